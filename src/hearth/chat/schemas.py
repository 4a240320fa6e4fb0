"""Request and response shapes of the chat API, and the value objects other contexts receive."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp

SessionKind = Literal["chat", "voice"]


class _Strict(BaseModel):
    # Unknown fields are refused so a typo ("colection") is an error, not a silently ignored option.
    model_config = ConfigDict(extra="forbid")


class TurnOptions(_Strict):
    """Per-request options; what a request leaves out comes from the user's preferences."""

    model: StrictStr | None = Field(None, min_length=1, max_length=128)
    rag: StrictBool | None = None
    collection: StrictStr | None = Field(None, min_length=1, max_length=128)
    max_tokens: int | None = Field(None, ge=1, le=8192, strict=True)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    session_id: StrictStr | None = Field(None, min_length=1, max_length=64)
    stream: StrictBool = True


class SendMessage(TurnOptions):
    # Not blank (the turn checks it, with its own message); the pattern tells clients.
    content: StrictStr = Field(json_schema_extra={"pattern": r"\S"})


class Preferences(ORMModel):
    """A user's chat and voice defaults (what `chat.ports.PREFERENCES` returns)."""

    model_config = ConfigDict(frozen=True)

    model: str | None = None  # a chat alias; None means the `chat` alias
    rag_enabled: bool = False
    collection: str | None = None
    voice: str | None = None


class PreferencesUpdate(_Strict):
    """PUT body: the fields sent are set (null clears one); the others keep their values."""

    model: StrictStr | None = Field(None, min_length=1, max_length=128)
    rag_enabled: StrictBool | None = None
    collection: StrictStr | None = Field(None, min_length=1, max_length=128)
    voice: StrictStr | None = Field(None, min_length=1, max_length=128)


class MessageOut(ORMModel):
    id: str
    conversation_id: str
    role: str
    content: str
    status: str  # complete | interrupted
    created_at: UtcTimestamp
    session_id: str | None = None
    # The row's column is `meta`: `metadata` is SQLAlchemy's own attribute on every model.
    metadata: dict[str, Any] = Field(default={}, validation_alias=AliasChoices("meta", "metadata"))


class ConversationOut(ORMModel):
    id: str
    title: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    message_count: int = 0  # not a column: set by `counted`

    @classmethod
    def counted(cls, row: Any, count: int) -> ConversationOut:
        """The conversation `row` holding `count` messages."""
        return cls.model_validate(row).model_copy(update={"message_count": count})


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class TurnReply(BaseModel):
    """A whole turn (`stream: false`); with `stream: true` the same arrives as server-sent events."""

    conversation_id: str
    user: MessageOut
    assistant: MessageOut
    title: str | None = None  # a new conversation's title, once the model named it
    error: dict[str, Any] | None = None  # the reply broke off: what was said is stored, marked interrupted


class ConversationRename(_Strict):
    title: StrictStr = Field(min_length=1, max_length=200)


class SearchHit(BaseModel):
    conversation: ConversationOut
    snippet: str  # the matching title or the start of the first matching message


class SessionOpen(_Strict):
    kind: SessionKind
    metadata: dict[str, Any] = {}


class SessionOut(BaseModel):
    id: str
    user_id: str
    kind: str
    started_at: UtcTimestamp
    last_activity: UtcTimestamp
    expires_at: UtcTimestamp
    metadata: dict[str, Any] = {}
