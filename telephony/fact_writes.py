"""What one domain fact writes to the store.

A fact with a ticket becomes one step on that ticket's timeline; the start and
the end of a call also write the call's record (live-call set, for restart), and
the end of a call with a ticket marks the ticket for the archive.
Every other fact writes nothing. The same rule runs in the service process
(in-process store) and in the store's writer process, which receives facts as
plain tuples in DomainEvent's field order, hence the positional unpacking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from telephony.domain_events import CALL_ENDED, CALL_STARTED

# Facts that write even without a ticket (when they carry a call id).
CALL_BOUNDS = frozenset((CALL_STARTED, CALL_ENDED))


class FactSink(Protocol):
    platform: str

    def append_timeline(self, ticket_id: str, kind: str, timestamp: str,
                        record: dict[str, Any] | None = None) -> None: ...

    def put_call(self, call_id: str, record: dict[str, Any]) -> None: ...

    def end_call(self, call_id: str, record: dict[str, Any]) -> None: ...

    def ticket_ended(self, ticket_id: str, timestamp: str) -> None: ...


def writes_anything(fact: Sequence[Any]) -> bool:
    """Cheap pre-check, so facts that write nothing never leave the event path."""
    return bool(fact[3]) or (fact[0] in CALL_BOUNDS and bool(fact[2]))


def persist_fact(store: FactSink, fact: Sequence[Any]) -> None:
    """Buffer the writes of one fact (kind, ts, call_id, ticket_id, leg, data)."""
    kind, ts, call_id, ticket_id, leg, data = fact
    if ticket_id:
        # One dict per step; the store skips a "ts" field (the step has its own).
        record = {"call_id": call_id or "", "leg": leg or ""}
        if data:
            record.update(data)
            if "kind" in data:  # the fact's own kind (e.g. the transfer kind) is kept
                record["detail_kind"] = record.pop("kind")
        store.append_timeline(ticket_id, kind, f"{ts:.6f}", record)
    if not call_id:
        return
    if kind == CALL_STARTED:
        store.put_call(call_id, {"started": ts, "platform": store.platform,
                                 "ticket_id": ticket_id or ""})
    elif kind == CALL_ENDED:
        store.end_call(call_id, {"ended": ts, **(data or {})})
        if ticket_id:  # the archive takes the ticket once it has been quiet a moment
            store.ticket_ended(ticket_id, f"{ts:.6f}")
