"""Routes under /api/notify: channel preferences, push subscriptions and the VAPID key, the in-app
inbox, the delivery log, and a test notification to yourself."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from hearth.auth.deps import CurrentUser
from hearth.notify.ports import SERVICE
from hearth.notify.schemas import (
    DeliveryList,
    Inbox,
    InboxItemOut,
    NotifyPreferencesOut,
    NotifyPreferencesUpdate,
    NotifyResult,
    SubscriptionCreate,
    SubscriptionOut,
    TestNotification,
    VapidKey,
)
from hearth.notify.service import NotifyService
from hearth.platform.deps import port
from hearth.platform.kit.openapi import errors
from hearth.platform.kit.repository import MAX_SQL_INT

router = APIRouter(prefix="/api/notify", tags=["notify"])

Notify = Annotated[NotifyService, Depends(port(SERVICE))]
Status = Literal["pending", "sending", "sent", "deferred", "retrying", "failed"]


@router.get("/preferences", response_model=NotifyPreferencesOut)
async def get_preferences(notify: Notify, principal: CurrentUser) -> NotifyPreferencesOut:
    """The caller's channels, email address, time zone and quiet hours."""
    return await notify.preferences(user_id=principal.user_id)


@router.put("/preferences", response_model=NotifyPreferencesOut)
async def set_preferences(
    body: NotifyPreferencesUpdate, notify: Notify, principal: CurrentUser
) -> NotifyPreferencesOut:
    """Set the fields given; 422 for an unknown time zone, or email without an address or SMTP."""
    return await notify.set_preferences(user_id=principal.user_id, changes=body)


@router.get("/vapid-key", response_model=VapidKey)
async def vapid_key(notify: Notify, _: CurrentUser) -> VapidKey:
    """The server's VAPID public key, for `pushManager.subscribe({applicationServerKey})`."""
    return VapidKey(public_key=notify.vapid_public_key)


@router.post("/subscriptions", status_code=201, response_model=SubscriptionOut)
async def subscribe(body: SubscriptionCreate, notify: Notify, principal: CurrentUser) -> SubscriptionOut:
    """Store a browser's push subscription (its PushSubscription.toJSON())."""
    return await notify.subscribe(user_id=principal.user_id, body=body)


@router.get("/subscriptions", response_model=list[SubscriptionOut])
async def subscriptions(notify: Notify, principal: CurrentUser) -> list[SubscriptionOut]:
    return await notify.subscriptions(user_id=principal.user_id)


@router.delete("/subscriptions/{subscription_id}", status_code=204, responses=errors(404))
async def unsubscribe(subscription_id: str, notify: Notify, principal: CurrentUser) -> Response:
    await notify.unsubscribe(user_id=principal.user_id, subscription_id=subscription_id)
    return Response(status_code=204)


@router.get("/inbox", response_model=Inbox)
async def inbox(
    notify: Notify,
    principal: CurrentUser,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> Inbox:
    """The caller's in-app notifications, newest first, and how many are unread."""
    return await notify.inbox(user_id=principal.user_id, unread_only=unread, limit=limit, offset=offset)


@router.post("/inbox/{item_id}/read", response_model=InboxItemOut, responses=errors(404))
async def mark_read(item_id: str, notify: Notify, principal: CurrentUser) -> InboxItemOut:
    return await notify.mark_read(user_id=principal.user_id, item_id=item_id)


@router.post("/inbox/read", response_model=dict[str, int])
async def mark_all_read(notify: Notify, principal: CurrentUser) -> dict[str, int]:
    """Mark every unread item read; how many were."""
    return {"marked": await notify.mark_all_read(user_id=principal.user_id)}


@router.get("/deliveries", response_model=DeliveryList)
async def deliveries(
    notify: Notify,
    principal: CurrentUser,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> DeliveryList:
    """The delivery log: the caller's deliveries, newest first, each with every attempt and its outcome."""
    rows = await notify.deliveries(user_id=principal.user_id, status=status, limit=limit, offset=offset)
    return DeliveryList(data=rows)


@router.post("/test", response_model=NotifyResult)
async def test(body: TestNotification, notify: Notify, principal: CurrentUser) -> NotifyResult:
    """Notify yourself on your channels (topic "test"), to check them; a dedupe_key makes a repeat
    within the window a no-op."""
    return await notify.notify(
        principal.user_id,
        topic="test",
        dedupe_key=body.dedupe_key or uuid.uuid4().hex,
        title=body.title,
        body=body.body,
        url=body.url,
    )
