"""The shape shared by every call-control operation: an explicit state machine.

An operation is pure. `start()` returns the AMI actions to send; `feed(event)`
advances it from AMI events (never from action replies alone) and may return
follow-up actions; `request(verb)` handles a user command (complete, cancel,
leave...). Every transition is checked against TRANSITIONS and timestamped,
with the Asterisk event `Timestamp` when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from telephony.control.errors import WrongState

Action = dict[str, Any]
Event = Mapping[str, Any]


CALL_ENDED = "call_ended"


class IllegalTransition(RuntimeError):
    """A bug: the state machine was asked to move along an edge it does not have."""


@dataclass
class Step:
    state: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state, "at": self.at}
        if self.detail:
            body["detail"] = self.detail
        return body


def event_time(event: Event, now: float) -> float:
    """Asterisk's µs `Timestamp` (timestampevents=yes) when present, else our clock."""
    try:
        return float(event["Timestamp"])
    except (KeyError, TypeError, ValueError):
        return now


def event_name(event: Event) -> str:
    return str(event.get("Event", ""))


class Operation:
    kind: ClassVar[str] = "operation"
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {}
    TERMINAL: ClassVar[frozenset[str]] = frozenset()
    VERBS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, op_id: str, call_id: str, platform: str, initiator: str,
                 now: float, target: str | None = None, ticket_id: str | None = None) -> None:
        self.op_id = op_id
        self.call_id = call_id
        self.ticket_id = ticket_id  # the store copies each step onto this ticket's timeline
        self.platform = platform
        self.initiator = initiator
        self.target = target
        self.state = "created"
        self.outcome: str | None = None
        self.created_at = now
        self.interrupted = False  # an action may or may not have run; events will tell
        self.steps: list[Step] = [Step("created", now)]

    # --- state machine -------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in self.TERMINAL or self.state == CALL_ENDED

    def _go(self, state: str, at: float, **detail: Any) -> None:
        # CALL_ENDED is the one edge every live state has: the call vanished while we
        # were not looking (AMI down), and Asterisk is the truth.
        allowed = self.TRANSITIONS.get(self.state, frozenset())
        if self.done or (state not in allowed and state != CALL_ENDED):
            raise IllegalTransition(f"{self.kind}: {self.state} -> {state}")
        self.state = state
        self.steps.append(Step(state, at, detail))

    def note(self, at: float, **detail: Any) -> None:
        """Record a step that does not change state (a party left, a decision, a swap)."""
        self.steps.append(Step(self.state, at, detail))

    def _finish(self, state: str, outcome: str, at: float, **detail: Any) -> None:
        self._go(state, at, outcome=outcome, **detail)
        self.outcome = outcome

    def reconcile(self, call: Any, now: float) -> None:
        """After an AMI reconnect: settle what the events we missed would have told us.

        `call` is the directory's CallView (None when the call is gone). Never
        re-sends anything; subclasses add what they can prove from the live state.
        """
        if call is None and not self.done:
            self._finish(CALL_ENDED, CALL_ENDED, now)

    def step_time(self, state: str) -> float | None:
        return next((s.at for s in self.steps if s.state == state), None)

    # --- the interface the controller drives ------------------------------
    def start(self, now: float) -> list[Action]:
        raise NotImplementedError

    def feed(self, event: Event, now: float) -> list[Action]:
        raise NotImplementedError

    def request(self, verb: str, now: float, **kwargs: Any) -> list[Action]:
        raise WrongState(f"{self.kind} does not support {verb}", code="unsupported_verb")

    # States in which a refused action means nothing happened yet (None: any live state).
    REJECTABLE: tuple[str, ...] | None = ()

    def action_failed(self, reply: Mapping[str, Any], now: float) -> None:
        """The node answered an action with an error: nothing changed in Asterisk."""
        rejectable = not self.done if self.REJECTABLE is None else self.state in self.REJECTABLE
        if rejectable:
            self._finish("rejected", "rejected", now, reply=str(reply.get("Message", ""))[:200])

    def reply_events(self, events: list[Mapping[str, Any]], now: float) -> list[Action]:
        """Events delivered with a reply (OriginateResponse) rather than globally."""
        out: list[Action] = []
        for event in events:
            out.extend(self.feed(event, now))
        return out

    def require_state(self, *states: str, verb: str) -> None:
        if self.state not in states:
            raise WrongState(f"cannot {verb} while {self.state}", code="wrong_state",
                             state=self.state, allowed=list(states))

    def setup_samples(self) -> list[dict[str, Any]]:
        """(labels, seconds) for hotline_transfer_setup_seconds once finished."""
        return []

    def to_dict(self) -> dict[str, Any]:
        return {
            "op_id": self.op_id, "kind": self.kind, "call_id": self.call_id,
            "ticket_id": self.ticket_id,
            "platform": self.platform, "initiator": self.initiator, "target": self.target,
            "state": self.state, "outcome": self.outcome, "done": self.done,
            "interrupted": self.interrupted, "created_at": self.created_at,
            "steps": [s.to_dict() for s in self.steps],
        }


def transitions(spec: dict[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    return {k: frozenset(v) for k, v in spec.items()}


def is_leg(event: Event, uniqueid: str | None, channel: str | None, prefix: str = "") -> bool:
    """Does the event's (prefixed) Uniqueid or Channel name this leg?"""
    uid = event.get(f"{prefix}Uniqueid")
    if uniqueid and uid:
        return uid == uniqueid
    return bool(channel) and event.get(f"{prefix}Channel") == channel
