"""Where the IVR records what a caller asked for when no agent takes the call.

`TicketSink` is injected: the service backs it with Redis; tests use the
in-memory one; process AGI appends JSON lines to a file.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from telephony.ticket_context import TicketContext


@dataclass(frozen=True)
class IvrTicket:
    """A ticket the IVR closed by itself: a callback request or a self-service answer."""

    kind: str  # "callback" | "self_service"
    context: TicketContext
    callback_number: str = ""
    answered_faq: str = ""  # knowledge-base entry id, for self-service
    created_at: float = field(default_factory=time.time)

    def as_record(self) -> dict[str, object]:
        record = asdict(self)
        record["context"] = self.context.wire_values()
        return record


class TicketSink(Protocol):
    async def record(self, ticket: IvrTicket) -> None: ...


class InMemoryTicketSink:
    def __init__(self) -> None:
        self.tickets: list[IvrTicket] = []

    async def record(self, ticket: IvrTicket) -> None:
        self.tickets.append(ticket)


class JsonlTicketSink:
    """Append-only JSON lines, for process AGI where no service is running."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    async def record(self, ticket: IvrTicket) -> None:
        line = json.dumps(ticket.as_record(), ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


def new_ticket_id(platform: str) -> str:
    """T<platform>-<12 hex>: fits TicketContext's ticket_id alphabet and length."""
    return f"T{platform}-{uuid.uuid4().hex[:12]}"
