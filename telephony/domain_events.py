"""Domain events: what the tracker says happened, in call-centre terms.

One small immutable record per fact. `ts` is Asterisk's own clock (the AMI
`Timestamp` header, seconds with µs), so SLA figures don't depend on when we
read the event. `data` holds the few kind-specific fields (bridge id, queue,
transfer kind...). Kinds are plain dotted strings so they serialise as-is.
"""

from __future__ import annotations

from typing import Any, NamedTuple

CALL_STARTED = "call.started"
CALL_MERGED = "call.merged"  # two tracked calls turned out to be one (shared bridge/ticket)
CALL_ENDED = "call.ended"  # final event: the call left the live model (evicted)

LEG_CREATED = "leg.created"
LEG_RINGING = "leg.ringing"
LEG_ANSWERED = "leg.answered"
LEG_BRIDGED = "leg.bridged"
LEG_UNBRIDGED = "leg.unbridged"
LEG_LEFT = "leg.left"  # the leg hung up; data carries the cause

TRANSFER_STARTED = "transfer.started"
TRANSFER_COMPLETED = "transfer.completed"
TRANSFER_FAILED = "transfer.failed"
TRANSFER_CANCELLED = "transfer.cancelled"  # the agent abandoned an attended consultation
TRANSFER_RETURNED = "transfer.returned"  # after a failure the transferee is bridged again

CONFERENCE_STARTED = "conference.started"
CONFERENCE_JOINED = "conference.joined"
CONFERENCE_LEFT = "conference.left"
CONFERENCE_ENDED = "conference.ended"

QUEUE_JOINED = "queue.joined"
QUEUE_ABANDONED = "queue.abandoned"
QUEUE_ANSWERED = "queue.answered"

KEY_PRESSED = "key.pressed"  # UserEvent HotlineKey from a softphone feature code

# The ticket's context (TICKET_* channel variables) changed, or a leg joined the ticket:
# data holds the new values under ticket_context.FIELDS names (so the timeline says when
# each became known) and, for a joining leg, its `channel`.
TICKET_CONTEXT = "ticket.context"

TRANSFER_KINDS = ("blind", "attended", "threeway", "redirect")


class DomainEvent(NamedTuple):
    """Immutable and cheap to build (a tuple): the tracker makes one per fact."""

    kind: str
    ts: float
    call_id: str | None = None
    ticket_id: str | None = None
    leg: str | None = None  # Uniqueid of the leg concerned, when there is one
    data: dict[str, Any] = {}  # noqa: RUF012 - never mutated; the tracker passes a fresh dict

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "ts": self.ts}
        if self.call_id is not None:
            out["call_id"] = self.call_id
        if self.ticket_id is not None:
            out["ticket_id"] = self.ticket_id
        if self.leg is not None:
            out["leg"] = self.leg
        if self.data:
            out["data"] = dict(self.data)
        return out
