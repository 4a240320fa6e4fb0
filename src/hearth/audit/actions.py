"""Which events are admin actions, and how each reads in the audit log (action, actor, target, details)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hearth.auth.events import (
    KeyCreated,
    KeyRevoked,
    PasswordChanged,
    PasswordReset,
    UserCreated,
    UserDisabled,
    UserEnabled,
)
from hearth.events.schemas import Event
from hearth.gateway.events import ModelAliasChanged, ModelBackendChanged
from hearth.planner.events import PlanDeployed
from hearth.privacy.events import UserErased
from hearth.rag.events import CollectionShared, CollectionUnshared


@dataclass(frozen=True)
class Action:
    action: str
    actor: str | None  # username
    target: str
    details: dict[str, Any]


Names = dict[str, str]  # usernames by user id, for events that carry ids


def _user(e: UserCreated | UserDisabled | UserEnabled, action: str, _: Names) -> Action:
    details: dict[str, Any] = {"user_id": e.user_id}
    if isinstance(e, UserCreated):
        details |= {"role": e.role, "premium": e.premium}
    return Action(action, e.actor, e.username, details)


def _password(e: PasswordReset | PasswordChanged, action: str, _: Names) -> Action:
    # A user's own change is made by that user; a reset by the admin (None: the server's command line).
    actor = e.actor if isinstance(e, PasswordReset) else e.username
    return Action(action, actor, e.username, {"user_id": e.user_id})


def _key(e: KeyCreated | KeyRevoked, action: str, _: Names) -> Action:
    details: dict[str, Any] = {"user": e.username, "user_id": e.user_id}
    if isinstance(e, KeyCreated):
        details |= {"name": e.name, "priority": e.priority}
    return Action(action, e.actor, e.key_id, details)


def _share(e: CollectionShared | CollectionUnshared, action: str, names: Names) -> Action:
    details = {"user": names.get(e.user_id), "user_id": e.user_id}
    return Action(action, names.get(e.owner_id), e.collection_id, details)


def _erased(e: UserErased, action: str, _: Names) -> Action:
    # Names no one: the subject and (for self-erasure) the actor are the erasure's pseudonym.
    return Action(action, e.actor, e.subject, {"contexts": e.contexts})


def _deploy(e: PlanDeployed, action: str, _: Names) -> Action:
    keep = ("model_id", "gpu", "replicas", "ready", "alias", "url")
    return Action(action, None, f"{e.namespace}/{e.name}", {k: getattr(e, k) for k in keep})


def _model(e: ModelBackendChanged | ModelAliasChanged, action: str, _: Names) -> Action:
    if isinstance(e, ModelBackendChanged):
        return Action(f"backend.{e.change}", e.actor, e.name, {"type": e.type, "url": e.url})
    return Action(f"alias.{e.change}", e.actor, e.name, {"kind": e.kind, "deployments": e.deployments})


_ACTIONS: dict[type[Event], tuple[Callable[[Any, str, Names], Action], str]] = {
    UserCreated: (_user, "user.created"),
    UserDisabled: (_user, "user.disabled"),
    UserEnabled: (_user, "user.enabled"),
    PasswordReset: (_password, "user.password_reset"),
    PasswordChanged: (_password, "user.password_changed"),
    KeyCreated: (_key, "key.created"),
    KeyRevoked: (_key, "key.revoked"),
    CollectionShared: (_share, "collection.shared"),
    CollectionUnshared: (_share, "collection.unshared"),
    UserErased: (_erased, "user.erased"),
    PlanDeployed: (_deploy, "plan.deployed"),
    ModelBackendChanged: (_model, "backend"),
    ModelAliasChanged: (_model, "alias"),
}

AUDITED = tuple(_ACTIONS)  # the event classes the audit log consumes
_CHANGES = ("added", "changed", "removed")
ACTIONS = tuple(
    sorted(
        f"{action}.{change}" if cls in (ModelBackendChanged, ModelAliasChanged) else action
        for cls, (_, action) in _ACTIONS.items()
        for change in (_CHANGES if cls in (ModelBackendChanged, ModelAliasChanged) else ("",))
    )
)


def user_ids(event: Event) -> set[str]:
    """The user ids the event names without their usernames."""
    if isinstance(event, CollectionShared | CollectionUnshared):
        return {event.owner_id, event.user_id}
    return set()


def action_of(event: Event, names: Names) -> Action:
    describe, action = _ACTIONS[type(event)]
    return describe(event, action, names)
