"""What the controller needs from the rest of the service, as small protocols.

The tracker, AMI sessions and Redis store are written elsewhere; the service
wiring adapts them to these shapes. Views are plain frozen data so the
controller never mutates the tracker's model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from telephony.ticket_context import TicketContext


@dataclass(frozen=True)
class LegView:
    leg_id: str  # Asterisk Uniqueid
    channel: str
    role: str  # caller | agent | trunk | desk | supervisor | local
    agent_id: str | None = None  # the agent who owns this leg, if any
    bridge_id: str | None = None
    up: bool = True


@dataclass(frozen=True)
class CallView:
    call_id: str
    platform: str  # the platform that first received the call (首接)
    queue: str = ""  # the owning queue, where a caller returns
    legs: tuple[LegView, ...] = ()
    ticket: TicketContext | None = None
    conference: str | None = None

    def leg(self, leg_id: str) -> LegView | None:
        return next((leg for leg in self.legs if leg.leg_id == leg_id), None)

    def leg_by_channel(self, channel: str) -> LegView | None:
        return next((leg for leg in self.legs if leg.channel == channel), None)

    def agent_leg(self, agent_id: str | None = None) -> LegView | None:
        for leg in self.legs:
            if leg.role == "agent" and leg.up and (agent_id is None or leg.agent_id == agent_id):
                return leg
        return None

    def bridged_peer(self, leg: LegView) -> LegView | None:
        """The other live leg in the same bridge (two-party calls)."""
        if leg.bridge_id is None:
            return None
        peers = [other for other in self.legs
                 if other.up and other.bridge_id == leg.bridge_id and other.leg_id != leg.leg_id]
        return peers[0] if len(peers) == 1 else None

    def agents(self) -> set[str]:
        return {leg.agent_id for leg in self.legs if leg.agent_id}


class CallDirectory(Protocol):
    """Read access to the live call model (the tracker)."""

    def get_call(self, call_id: str) -> CallView | None: ...

    def call_for_channel(self, channel: str) -> str | None: ...

    def call_for_agent(self, agent_id: str) -> str | None: ...


class ActionSender(Protocol):
    """One AMI node. send() raises ConnectionError when the session drops mid-action."""

    @property
    def ready(self) -> bool: ...

    async def send(self, action: Mapping[str, Any]) -> Any: ...

    def submit(self, action: Mapping[str, Any]) -> Awaitable[Any]:
        """The action is written before this returns (ConnectionError if it cannot be);
        await the result for its reply, with send()'s errors."""
        ...


class OpStore(Protocol):
    async def save(self, record: Mapping[str, Any]) -> None: ...

    async def get(self, op_id: str) -> Mapping[str, Any] | None: ...


class OpListener(Protocol):
    """Told when an operation reaches a terminal state (metrics, ticket timeline)."""

    def op_finished(self, op: Any) -> None: ...


@dataclass
class InMemoryOpStore:
    """OpStore for tests and single-process runs."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def save(self, record: Mapping[str, Any]) -> None:
        self.records[str(record["op_id"])] = dict(record)

    async def get(self, op_id: str) -> Mapping[str, Any] | None:
        return self.records.get(op_id)
