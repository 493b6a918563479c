"""Fakes and realistic AMI event builders for call-control tests and demos (no I/O)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from telephony.control.protocols import CallView, LegView
from telephony.ticket_context import TicketContext

CALLER = "PJSIP/citizen-00000001"
CALLER_UID = "1764380000.1"
AGENT = "PJSIP/agent12345-1-00000002"
AGENT_UID = "1764380000.2"
AGENT_ID = "agent12345-1"
BRIDGE = "0b7c8a1e-0000-4000-8000-000000000001"
TRUNK = "PJSIP/trunk110-00000003"
TRUNK_UID = "1764380000.3"

_ts = itertools.count(1)


def ts() -> str:
    """Monotonic µs-style Asterisk timestamps."""
    return f"{1764380000 + next(_ts) / 1000:.6f}"


def ev(name: str, **fields: str) -> dict[str, str]:
    base = {"Event": name, "Privilege": "call,all", "Timestamp": ts()}
    base.update(fields)
    return base


def chan(channel: str, uid: str, **more: str) -> dict[str, str]:
    return {"Channel": channel, "Uniqueid": uid, "Linkedid": CALLER_UID,
            "ChanVariable(TICKET_ID)": "T-0001", **more}


def ticket(summary: str = "water leak") -> TicketContext:
    return TicketContext(ticket_id="T-0001", origin="12345", category="600200",
                         callback="13800000000", division="440100", summary=summary)


def two_party_call(call_id: str = CALLER_UID, agent_id: str = AGENT_ID,
                   bridged: bool = True, **kw: Any) -> CallView:
    bridge = BRIDGE if bridged else None
    return CallView(call_id=call_id, platform="12345", queue="q12345", ticket=ticket(), legs=(
        LegView(CALLER_UID, CALLER, "caller", None, bridge),
        LegView(AGENT_UID, AGENT, "agent", agent_id, bridge),
    ), **kw)


@dataclass
class FakeDirectory:
    calls: dict[str, CallView] = field(default_factory=dict)

    def put(self, call: CallView) -> None:
        self.calls[call.call_id] = call

    def get_call(self, call_id: str) -> CallView | None:
        return self.calls.get(call_id)

    def call_for_channel(self, channel: str) -> str | None:
        return next((c.call_id for c in self.calls.values() if c.leg_by_channel(channel)), None)

    def call_for_agent(self, agent_id: str) -> str | None:
        return next((c.call_id for c in self.calls.values() if agent_id in c.agents()), None)

    def drop_leg(self, call_id: str, leg_id: str) -> None:
        call = self.calls[call_id]
        self.calls[call_id] = replace(call, legs=tuple(
            leg for leg in call.legs if leg.leg_id != leg_id))


@dataclass
class FakeSender:
    ready: bool = True
    sent: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, Any] = field(default_factory=dict)  # Action name -> reply
    fail_with: BaseException | None = None

    async def send(self, action: Mapping[str, Any]) -> Any:
        return await self.submit(action)

    def submit(self, action: Mapping[str, Any]) -> Awaitable[Any]:
        self.sent.append(dict(action))  # on the wire now, as AmiSession.submit
        return self._reply(action)

    async def _reply(self, action: Mapping[str, Any]) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        name = str(action["Action"])
        reply = self.replies.get(name, {"Response": "Success", "Message": "ok"})
        return reply(action) if callable(reply) else reply

    def names(self) -> list[str]:
        return [str(a["Action"]) for a in self.sent]


def blind_success_events(target: str = "110") -> list[dict[str, str]]:
    """The event order Asterisk 22 emits for BlindTransfer (asterisk-notes.md)."""
    return [
        ev("BlindTransfer", Result="Success", TransfererChannel=AGENT,
           TransfererUniqueid=AGENT_UID, TransfereeChannel=CALLER,
           TransfereeUniqueid=CALLER_UID, BridgeUniqueid=BRIDGE, IsExternal="Yes",
           Context="hotline-xfer", Extension=target),
        ev("BridgeLeave", BridgeUniqueid=BRIDGE, **chan(CALLER, CALLER_UID)),
        ev("BridgeLeave", BridgeUniqueid=BRIDGE, **chan(AGENT, AGENT_UID)),
        ev("Hangup", Cause="16", **chan(AGENT, AGENT_UID)),
        ev("Newchannel", **chan(TRUNK, TRUNK_UID, Exten=target)),
        ev("DialBegin", DestChannel=TRUNK, DestUniqueid=TRUNK_UID,
           DialString=f"{target}@trunk110", **chan(CALLER, CALLER_UID)),
        ev("DialEnd", DestChannel=TRUNK, DestUniqueid=TRUNK_UID, DialStatus="ANSWER",
           **chan(CALLER, CALLER_UID)),
        ev("BridgeEnter", BridgeUniqueid="b-2", BridgeNumChannels="1",
           **chan(CALLER, CALLER_UID)),
        ev("BridgeEnter", BridgeUniqueid="b-2", BridgeNumChannels="2",
           **chan(TRUNK, TRUNK_UID)),
    ]


def blind_failure_events(status: str = "BUSY") -> list[dict[str, str]]:
    """Target busy: hotline-xfer sends the caller to hotline-return."""
    return [
        *blind_success_events()[:6],
        ev("DialEnd", DestChannel=TRUNK, DestUniqueid=TRUNK_UID, DialStatus=status,
           **chan(CALLER, CALLER_UID)),
        ev("Hangup", Cause="17", **chan(TRUNK, TRUNK_UID)),
        ev("Newexten", Context="hotline-return", Extension="agent", **chan(CALLER, CALLER_UID)),
    ]
