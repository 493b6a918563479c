"""One-key (blind) transfer: the caller goes to the target, the agent leg ends.

Event path (Asterisk 22, checked in the lab): BlindTransfer, BridgeLeave x2,
agent Hangup, Newchannel (target), DialBegin/DialEnd on the caller, BridgeEnter.
On DialEnd without ANSWER the hotline-xfer dialplan sends the caller to
hotline-return: first the transferring agent (the dialplan reads it from
BLINDTRANSFER, which Asterisk sets on the caller; a DialBegin/DialEnd ANSWER on the
caller), else the front of the original queue (QueueCallerJoin). So the press is
one action, as the raw floor in bench/bench_transfer.py.
"""

from __future__ import annotations

from typing import Any

from telephony.control import actions
from telephony.control.operation import (
    Action,
    Event,
    Operation,
    event_name,
    event_time,
    is_leg,
    transitions,
)
from telephony.control.targets import Target


class BlindTransfer(Operation):
    kind = "blind_transfer"
    mode = "blind"
    TRANSITIONS = transitions({
        "created": ("requested", "rejected"),
        # DialBegin without a BlindTransfer event (missed during a reconnect) still proves it.
        "requested": ("transferred", "ringing", "rejected", "caller_hung_up"),
        "transferred": ("ringing", "answered", "target_failed", "caller_hung_up"),
        "ringing": ("answered", "target_failed", "caller_hung_up"),
        "answered": ("completed", "caller_hung_up"),
        "target_failed": ("returning", "returned_to_queue", "caller_hung_up"),
        "returning": ("returned_to_agent", "returned_to_queue", "caller_hung_up"),
    })
    TERMINAL = frozenset({"completed", "rejected", "caller_hung_up",
                          "returned_to_agent", "returned_to_queue"})

    def __init__(self, *, agent_channel: str, agent_uid: str, caller_channel: str,
                 caller_uid: str, target_spec: Target, **kw: Any) -> None:
        super().__init__(target=target_spec.number, **kw)
        self.target_spec = target_spec
        self.agent_channel, self.agent_uid = agent_channel, agent_uid
        self.caller_channel, self.caller_uid = caller_channel, caller_uid
        self.target_channel: str | None = None
        self.dial_status: str | None = None

    def start(self, now: float) -> list[Action]:
        self._go("requested", now)
        return [actions.blind_transfer(self.agent_channel, self.target_spec)]

    REJECTABLE = ("created", "requested")

    def feed(self, event: Event, now: float) -> list[Action]:
        if self.done:
            return []
        at, name = event_time(event, now), event_name(event)
        caller = is_leg(event, self.caller_uid, self.caller_channel)
        if name == "Hangup" and caller:
            self._finish("caller_hung_up", "caller_hung_up", at)
        elif name == "BlindTransfer" and self.state == "requested" and is_leg(
                event, self.caller_uid, self.caller_channel, "Transferee"):
            if event.get("Result", "Success") == "Success":
                self._go("transferred", at)
            else:
                self._finish("rejected", "rejected", at, result=str(event.get("Result")))
        elif name == "DialBegin" and caller and self.state in ("requested", "transferred"):
            self.target_channel = str(event.get("DestChannel", "")) or None
            self._go("ringing", at, dest=self.target_channel)
        elif name == "DialBegin" and caller and self.state == "target_failed":
            self._go("returning", at, dest=str(event.get("DestChannel", "")))
        elif name == "DialEnd" and caller:
            self._dial_end(event, at)
        elif name == "BridgeEnter" and caller and self.state == "answered":
            self._finish("completed", "completed", at)
        elif name == "QueueCallerJoin" and caller and self.state in ("target_failed",
                                                                      "returning"):
            self._finish("returned_to_queue", "returned_to_queue", at,
                         queue=str(event.get("Queue", "")))
        return []

    def _dial_end(self, event: Event, at: float) -> None:
        status = str(event.get("DialStatus", ""))
        if self.state in ("transferred", "ringing"):
            self.dial_status = status
            if status == "ANSWER":
                self._go("answered", at)
            else:
                self._go("target_failed", at, dial_status=status)
        elif self.state == "returning" and status == "ANSWER":
            self._finish("returned_to_agent", "returned_to_agent", at)
        # A failed dial back to the agent is followed by QueueCallerJoin.

    def setup_samples(self) -> list[dict[str, Any]]:
        if not self.done or self.state == "rejected":
            return []
        end = self.step_time("answered") or self.steps[-1].at
        outcome = self.outcome if self.state != "completed" else "answered"
        return [{"from": self.platform, "to": self.target, "mode": self.mode,
                 "outcome": outcome, "seconds": max(0.0, end - self.created_at)}]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "mode": self.mode, "agent_channel": self.agent_channel,
                "caller_channel": self.caller_channel, "target_channel": self.target_channel,
                "dial_status": self.dial_status}

    def reconcile(self, call: Any, now: float) -> None:
        super().reconcile(call, now)
        if self.done or self.state != "requested":
            return
        agent = call.leg(self.agent_uid)
        if agent is not None and agent.up and call.bridged_peer(agent) is not None:
            # The agent is still bridged to the caller: the transfer never ran.
            self._finish("rejected", "not_executed", now)
