"""Serving a fine-tuned adapter: a llama_cpp backend = the base GGUF + the adapter GGUF, and an alias on it.

Three ways in, one catalogue entry: the entries for hearth.yaml (`yaml_snippet`), the run-time model admin
in-process (`serve_with`, for a pipeline step inside the server: stored, audited, served at once) and over
HTTP (`serve_over_http`, for the CLI). Serving the same alias again points it at the new adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import httpx

    from hearth.gateway.admin import ModelAdmin


class AliasTaken(ValueError):
    """The alias exists and serves something other than a fine-tuned adapter: it is not replaced."""


def backend_name(alias: str) -> str:
    return f"{alias}-lora"


def _check_replaceable(alias: str, deployments: list[Any] | None) -> None:
    # Re-serving a fine-tuned alias points it at the new adapter; an alias that serves anything else (the
    # built-in `chat`, a remote model) is the user's, and a training run must not silently take it over.
    if deployments is None:
        return
    backends = [d.get("backend") if isinstance(d, dict) else d.backend for d in deployments]
    if backends != [backend_name(alias)]:
        raise AliasTaken(
            f"alias {alias!r} already serves {', '.join(map(str, backends))}; choose another alias, or "
            f"route it to the adapter yourself: hearth models set alias {alias} -d {backend_name(alias)}"
        )


def entries(
    alias: str,
    adapter: Path,
    *,
    base_model: Path | None = None,
    description: str = "",
    n_ctx: int = 4096,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backend spec, alias spec) as hearth.yaml and /api/admin/models take them. `base_model` None: the
    shipped SmolLM2 GGUF the adapter was trained on."""
    # lora_scale 1.0 (as trained) is written out so that serving a new adapter resets a scale changed since.
    backend: dict[str, Any] = {
        "type": "llama_cpp",
        "lora_path": str(Path(adapter).resolve()),
        "lora_scale": 1.0,
        "n_ctx": n_ctx,
    }
    if base_model is not None:
        backend["model_path"] = str(Path(base_model).resolve())
    spec = {
        "kind": "chat",
        "description": description or f"SmolLM2-135M fine-tuned with LoRA ({Path(adapter).name})",
        "deployments": [{"backend": backend_name(alias)}],
    }
    return backend, spec


def yaml_snippet(alias: str, adapter: Path, **kwargs: Any) -> str:
    """The lines to add to hearth.yaml to serve the adapter under `alias`."""
    backend, spec = entries(alias, adapter, **kwargs)
    return yaml.safe_dump(
        {"backends": {backend_name(alias): backend}, "aliases": {alias: spec}}, sort_keys=False
    )


async def serve_with(admin: ModelAdmin, alias: str, adapter: Path, *, actor: str, **kwargs: Any) -> None:
    """Add (or update) the backend and alias through the run-time model admin: validated, stored in
    model_overrides with audit events, and served by the gateway before this returns."""
    from hearth.platform.errors import HearthError

    current = admin.registry.config.aliases.get(alias)
    _check_replaceable(alias, current.deployments if current else None)
    backend, spec = entries(alias, adapter, **kwargs)
    for section, name, body in (("backends", backend_name(alias), backend), ("aliases", alias, spec)):
        try:
            await admin.create(section, name, body, actor=actor)  # type: ignore[arg-type]
        except HearthError as exc:
            if exc.status != 409:
                raise
            await admin.update(section, name, body, actor=actor)  # type: ignore[arg-type]


def serve_over_http(client: httpx.Client, alias: str, adapter: Path, **kwargs: Any) -> None:
    """The same through a running server's /api/admin/models (an admin key in `client`'s headers).
    Raises httpx.HTTPStatusError with the server's answer when it refuses."""
    current = client.get(f"/v1/models/{alias}")
    if current.status_code == 200:
        _check_replaceable(alias, [{"backend": d["backend"]} for d in current.json()["deployment_details"]])
    elif current.status_code != 404:
        current.raise_for_status()
    backend, spec = entries(alias, adapter, **kwargs)
    for section, name, body in (("backends", backend_name(alias), backend), ("aliases", alias, spec)):
        response = client.post(f"/api/admin/models/{section}", json={"name": name, **body})
        if response.status_code == 409:  # served before: point it at the new adapter
            response = client.patch(f"/api/admin/models/{section}/{name}", json=body)
        response.raise_for_status()
