"""Tips routes under /api/tips: the profile, connectors, agents and their outputs, the next tip and
feedback on it. Thin: parse, call the service, shape the reply. Every route acts for the caller only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from hearth.auth.deps import CurrentUser
from hearth.gateway.service import metered_caller
from hearth.platform.deps import port
from hearth.platform.kit.openapi import MODEL_ERRORS, errors
from hearth.tips.ports import SERVICE
from hearth.tips.schemas import (
    ActiveContextIn,
    AgentOut,
    ConnectorIn,
    ConnectorOut,
    ConsentIn,
    ConsentLogEntry,
    ConsentOut,
    ContextIn,
    ContextOut,
    FeedbackIn,
    FeedbackOut,
    NextTipIn,
    OutputOut,
    Preferences,
    PreferencesUpdate,
    Profile,
    TipOut,
)
from hearth.tips.service import TipsService

router = APIRouter(prefix="/api/tips", tags=["tips"])
Tips = Annotated[TipsService, Depends(port(SERVICE))]
ContextPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f/]+$")]
IdPath = Annotated[str, Path(min_length=1, max_length=64)]
ConsentKey = Annotated[str, Path(min_length=1, max_length=64)]

# -- profile ---------------------------------------------------------------------------------------------


@router.get("/profile")
async def get_profile(principal: CurrentUser, tips: Tips) -> Profile:
    """The caller's preferences, contexts (and the active one) and consents."""
    return await tips.profile.get(user_id=principal.user_id)


@router.patch("/profile/preferences")
async def update_preferences(body: PreferencesUpdate, principal: CurrentUser, tips: Tips) -> Preferences:
    """Change the fields given; the others keep their values."""
    return await tips.profile.update_preferences(user_id=principal.user_id, changes=body)


@router.get("/profile/contexts")
async def list_contexts(principal: CurrentUser, tips: Tips) -> list[ContextOut]:
    return await tips.profile.contexts(user_id=principal.user_id)


@router.put("/profile/contexts/{name}", responses=errors(409))
async def put_context(name: ContextPath, body: ContextIn, principal: CurrentUser, tips: Tips) -> ContextOut:
    """Create the named context, or change its description."""
    return await tips.profile.put_context(user_id=principal.user_id, name=name, description=body.description)


@router.delete("/profile/contexts/{name}", status_code=204, responses=errors(404))
async def delete_context(name: ContextPath, principal: CurrentUser, tips: Tips) -> Response:
    await tips.profile.delete_context(user_id=principal.user_id, name=name)
    return Response(status_code=204)


@router.put("/profile/active-context", responses=errors(404))
async def set_active_context(body: ActiveContextIn, principal: CurrentUser, tips: Tips) -> Profile:
    """Make one context active (agents it silences stay quiet), or none with `{"name": null}`."""
    await tips.profile.activate(user_id=principal.user_id, name=body.name)
    return await tips.profile.get(user_id=principal.user_id)


@router.get("/profile/consents")
async def list_consents(principal: CurrentUser, tips: Tips) -> list[ConsentOut]:
    return await tips.profile.consents(user_id=principal.user_id)


@router.put("/profile/consents/{key}", responses=errors(404))
async def set_consent(key: ConsentKey, body: ConsentIn, principal: CurrentUser, tips: Tips) -> ConsentOut:
    """Grant or revoke one consent. Revoking deletes the stored outputs of every agent that needs it."""
    return await tips.profile.set_consent(user_id=principal.user_id, key=key, granted=body.granted)


@router.get("/profile/consents/log")
async def consent_log(
    principal: CurrentUser, tips: Tips, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[ConsentLogEntry]:
    """The audit trail of the caller's grants and revocations, newest first."""
    return await tips.profile.consent_log(user_id=principal.user_id, limit=limit)


# -- connectors ------------------------------------------------------------------------------------------


@router.post("/connectors", status_code=201, responses=errors(409))
async def add_connector(body: ConnectorIn, principal: CurrentUser, tips: Tips) -> ConnectorOut:
    """Connect Todoist (its API token, kept encrypted and never shown again) or a local Markdown/.ics file
    under the tips folder of the Hearth home."""
    return await tips.connectors.add(user_id=principal.user_id, body=body)


@router.get("/connectors")
async def list_connectors(principal: CurrentUser, tips: Tips) -> list[ConnectorOut]:
    """The caller's connectors with their state (status, last error, next attempt) and signal counts."""
    return await tips.connectors.list(user_id=principal.user_id)


@router.delete("/connectors/{connector_id}", status_code=204, responses=errors(404))
async def remove_connector(connector_id: IdPath, principal: CurrentUser, tips: Tips) -> Response:
    """Remove the connector, its signals and its stored token."""
    await tips.connectors.remove(user_id=principal.user_id, connector_id=connector_id)
    return Response(status_code=204)


@router.post("/connectors/{connector_id}/sync", responses=errors(404))
async def sync_connector(connector_id: IdPath, principal: CurrentUser, tips: Tips) -> ConnectorOut:
    """Fetch from the source now; a failure shows in `status` and `last_error`."""
    return await tips.connectors.sync(user_id=principal.user_id, connector_id=connector_id)


@router.post("/sync")
async def sync_all(principal: CurrentUser, tips: Tips) -> list[ConnectorOut]:
    """Fetch from every connector of the caller, each on its own (one failing does not stop the others)."""
    return await tips.connectors.sync_user(user_id=principal.user_id)


# -- agents, tips, feedback ------------------------------------------------------------------------------


@router.get("/agents")
async def list_agents(principal: CurrentUser, tips: Tips) -> list[AgentOut]:
    """The agent registry (manifests) and whether each agent may contribute to the caller's tips now."""
    return await tips.agents(user_id=principal.user_id)


@router.get("/outputs")
async def list_outputs(principal: CurrentUser, tips: Tips) -> list[OutputOut]:
    """The caller's stored agent snippets."""
    return await tips.outputs(user_id=principal.user_id)


@router.post("/next", responses=errors(*MODEL_ERRORS))
async def next_tip(
    request: Request, principal: CurrentUser, tips: Tips, body: NextTipIn | None = None
) -> TipOut:
    """One tip now, from the eligible agents' fresh snippets (404 `no_tip` when none has anything to say)."""
    caller = await metered_caller(request.app, principal)
    body = body or NextTipIn()
    return await tips.next_tip(
        user_id=principal.user_id, caller=caller, candidates=body.candidates, notify=body.notify
    )


@router.get("")
async def list_tips(
    principal: CurrentUser, tips: Tips, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[TipOut]:
    """The caller's recent tips, newest first."""
    return await tips.tips(user_id=principal.user_id, limit=limit)


@router.post("/{tip_id}/feedback", responses=errors(404, 409))
async def feedback(tip_id: IdPath, body: FeedbackIn, principal: CurrentUser, tips: Tips) -> FeedbackOut:
    """done | snooze (with `until`) | dismiss. 404 for another user's tip; 409 when it expired or was
    already done or dismissed."""
    return await tips.give_feedback(user_id=principal.user_id, tip_id=tip_id, body=body)
