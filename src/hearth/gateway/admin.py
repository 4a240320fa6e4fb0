"""Admins change the model catalogue at run time: add, change and remove backends and aliases.

Each change is validated as a whole catalogue (a typo or an unknown backend is refused with what to fix),
applied to the live gateway through its `AliasRegistry` port (new backends start before anything is
swapped), stored in `model_overrides` and announced by an audited event in one transaction. At start-up the
stored changes are applied over hearth.yaml, so they survive restarts.

Why the database and not a file in the data directory: replicas sharing a PostgreSQL see the same changes,
the change and its audit event commit together, and the user's hand-written hearth.yaml is never rewritten.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from hearth.config import ConfigError, ModelsConfig, validate_models
from hearth.events.bus import EventBus
from hearth.gateway.events import ModelAliasChanged, ModelBackendChanged
from hearth.gateway.models import ModelOverride
from hearth.gateway.ports import AliasRegistry
from hearth.platform.db import Database
from hearth.platform.errors import HearthError, not_found
from hearth.platform.kit.tasks import cancelled
from hearth.platform.kit.time import utcnow

log = logging.getLogger("hearth.gateway")
Section = Literal["backends", "aliases"]
SOURCE = "model changes stored by admins (table model_overrides)"


class ModelAdmin:
    def __init__(
        self, *, db: Database, bus: EventBus, registry: AliasRegistry, sync_seconds: float = 5.0
    ) -> None:
        self.db = db
        self.bus = bus
        self.registry = registry
        self.sync_seconds = sync_seconds
        self.changed: dict[tuple[str, str], bool] = {}  # (section, name) → True: set, False: removed
        self._lock = asyncio.Lock()
        self._applied: frozenset[tuple[str, str, Any]] = frozenset()  # the stored rows this process serves
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow changes other processes store (another worker or replica on the same database): they
        are applied here within `sync_seconds` (0: only at start-up)."""
        if self._task is None and self.sync_seconds > 0:
            self._task = asyncio.create_task(self._follow(), name="model-admin-sync")

    async def stop(self) -> None:
        self._task = await cancelled(self._task)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.sync_seconds)
            try:
                async with self._lock:
                    await self.apply_stored()
            except Exception:  # the database may be away for a moment: try again next time
                log.exception("model changes not synchronised")

    async def apply_stored(self) -> None:
        """Apply the stored changes over the catalogue served now: at start-up (over hearth.yaml), then
        whenever another process stored one. A change that no longer fits the file (say, an alias whose
        backend the file dropped) is skipped with a warning. Rows are latest-per-name, so applying them all
        again changes only what changed."""
        async with self.db.sessions() as s:
            rows = (await s.execute(select(ModelOverride).order_by(ModelOverride.updated_at))).scalars().all()
        seen = frozenset((r.section, r.name, r.updated_at) for r in rows)
        if seen == self._applied:
            return
        self._applied = seen
        raw = _raw(self.registry.config)
        for row in rows:
            attempt = _with(raw, row.section, row.name, row.spec)
            try:
                validate_models(attempt, SOURCE)
            except ConfigError as exc:
                log.warning("stored model change skipped", extra={"name": row.name, "error": str(exc)})
                continue
            raw = attempt
            self.changed[(row.section, row.name)] = row.spec is not None
        models = validate_models(raw, SOURCE)
        if models == self.registry.config:
            return  # this process made these changes itself
        try:
            await self.registry.reconfigure(models)
        except ValueError as exc:
            log.error("stored model changes not applied", extra={"error": str(exc)})
            return
        log.info("stored model changes applied", extra={"changes": len(self.changed)})

    # -- reading

    def catalogue(self) -> dict[str, Any]:
        """Backends and aliases as configured now (secrets hidden), each with where it comes from."""
        config = self.registry.config
        backends = []
        for name, backend in config.backends.items():
            spec = backend.model_dump(exclude_unset=True)
            if spec.get("api_key"):
                spec["api_key"] = "(set)"
            users = [
                a for a, alias in config.aliases.items() if any(d.backend == name for d in alias.deployments)
            ]
            backends.append(
                {"name": name, **spec, "used_by": users, "changed_by_admin": self._changed("backends", name)}
            )
        aliases = [
            {
                "name": name,
                **alias.model_dump(exclude_unset=True),
                "changed_by_admin": self._changed("aliases", name),
            }
            for name, alias in config.aliases.items()
        ]
        return {"backends": backends, "aliases": aliases, "models": self.registry.describe()}

    def _changed(self, section: str, name: str) -> bool:
        return (section, name) in self.changed

    # -- changing

    async def create(
        self, section: Section, name: str, spec: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Add a backend or alias; 409 when the name is taken."""
        async with self._lock:
            if name in _raw(self.registry.config)[section]:
                what = section[:-1]
                raise HearthError(
                    409,
                    f"{what} {name!r} already exists; change it with `hearth models set {what} {name} …` "
                    f"(PATCH /api/admin/models/{section}/{name})",
                    code="already_exists",
                    param="name",
                )
            await self._commit(section, name, spec, "added", actor)
        return self._entry(section, name)

    async def update(
        self, section: Section, name: str, patch: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Change some fields of a backend or alias (a field set to null returns to its default)."""
        async with self._lock:
            current = _raw(self.registry.config)[section].get(name)
            if current is None:
                raise not_found(f"there is no {section[:-1]} {name!r}", param="name")
            merged = {k: v for k, v in {**current, **patch}.items() if v is not None}
            await self._commit(section, name, merged, "changed", actor)
        return self._entry(section, name)

    async def delete(self, section: Section, name: str, *, actor: str) -> None:
        """Remove a backend (409 while an alias uses it) or an alias."""
        async with self._lock:
            config = self.registry.config
            if name not in _raw(config)[section]:
                raise not_found(f"there is no {section[:-1]} {name!r}", param="name")
            if section == "backends":
                users = [
                    a
                    for a, alias in config.aliases.items()
                    if any(d.backend == name for d in alias.deployments)
                ]
                users += [b for b, backend in config.backends.items() if backend.embedder == name]
                if users:
                    raise HearthError(
                        409,
                        f"backend {name!r} is still used by {', '.join(users)}; fix: change or remove "
                        f"{'them' if len(users) > 1 else 'it'} first",
                        code="backend_in_use",
                        param="name",
                    )
            await self._commit(section, name, None, "removed", actor)

    async def _commit(
        self, section: Section, name: str, spec: dict[str, Any] | None, change: str, actor: str
    ) -> None:
        """Validate the whole catalogue with this change, store it with its event, and serve it: the
        transaction commits only when the gateway took the change."""
        raw = _with(_raw(self.registry.config), section, name, spec)
        try:
            models = validate_models(raw, f"{section}.{name}")
        except ConfigError as exc:
            raise HearthError(
                422, _relative(str(exc), section, name), code="invalid_model_config", param=section
            ) from None
        for key in ("model_path", "tokenizer_path", "lora_path"):
            # A backend no alias uses yet is not started, so check its files now rather than on first use.
            path = (spec or {}).get(key) if section == "backends" else None
            if path and not await asyncio.to_thread(Path(path).exists):
                raise HearthError(
                    422,
                    f"backends.{name}.{key}: {path} does not exist on the server; fix: give the path of the "
                    "file on the machine Hearth runs on",
                    code="invalid_model_config",
                    param=key,
                )
        async with self.db.transaction() as s:
            row = await s.get(ModelOverride, (section, name))
            if row is None:
                row = ModelOverride(section=section, name=name)
                s.add(row)
            row.spec, row.updated_at, row.updated_by = spec, utcnow(), actor
            await self.bus.publish(_event(models, section, name, change, actor), session=s)
            try:
                await self.registry.reconfigure(models)
            except ValueError as exc:
                raise HearthError(422, str(exc), code="backend_failed", param=section) from None
        self.changed[(section, name)] = spec is not None
        self._applied = frozenset()  # the next sync reads the rows again (and finds nothing new to serve)

    def _entry(self, section: Section, name: str) -> dict[str, Any]:
        items = self.catalogue()[section]
        return next(item for item in items if item["name"] == name)


def _raw(config: ModelsConfig) -> dict[str, dict[str, Any]]:
    dumped = config.model_dump(exclude_unset=True)
    return {"backends": dumped.get("backends", {}), "aliases": dumped.get("aliases", {})}


def _with(
    raw: dict[str, dict[str, Any]], section: str, name: str, spec: dict[str, Any] | None
) -> dict[str, Any]:
    out = {k: dict(v) for k, v in raw.items()}
    if spec is None:
        out[section].pop(name, None)
    else:
        out[section][name] = spec
    return out


def _relative(message: str, section: str, name: str) -> str:
    # validate_models names the change as its source; the key path inside it follows.
    prefix = f"{section}.{name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _event(
    models: ModelsConfig, section: Section, name: str, change: str, actor: str
) -> ModelBackendChanged | ModelAliasChanged:
    if section == "backends":
        backend = models.backends.get(name)
        return ModelBackendChanged(
            name=name,
            change=change,
            type=backend.type if backend else None,
            url=backend.base_url if backend else None,
            actor=actor,
        )
    alias = models.aliases.get(name)
    deployments = (
        [d.backend if d.model is None else f"{d.backend}/{d.model}" for d in alias.deployments]
        if alias
        else []
    )
    return ModelAliasChanged(
        name=name, change=change, kind=alias.kind if alias else None, deployments=deployments, actor=actor
    )
