"""Supervisor primitives: listen / whisper / barge (ChanSpy) and force-hangup.

Spying originates a call to the supervisor's phone that runs ChanSpy on the
spied leg once answered; ChanSpyStart/ChanSpyStop confirm it. Force-hangup
is confirmed by the leg's Hangup event.
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

SPY_MODES = tuple(actions.SPY_OPTIONS)


class Spy(Operation):
    kind = "spy"
    TRANSITIONS = transitions({
        "created": ("originating", "rejected"),
        "originating": ("spying", "failed", "ended"),
        "spying": ("ended",),
    })
    TERMINAL = frozenset({"ended", "failed", "rejected"})

    def __init__(self, *, mode: str, supervisor_endpoint: str, spied_channel: str,
                 spied_uid: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.mode = mode
        self.supervisor_endpoint = supervisor_endpoint
        self.spied_channel, self.spied_uid = spied_channel, spied_uid
        self.spyer_prefix = f"PJSIP/{supervisor_endpoint}-"

    def start(self, now: float) -> list[Action]:
        action = actions.chanspy(self.supervisor_endpoint, self.spied_channel, self.mode,
                                 {actions.VAR_OP_ID: self.op_id})
        self._go("originating", now)
        return [action]

    REJECTABLE = ("created", "originating")

    def feed(self, event: Event, now: float) -> list[Action]:
        if self.done:
            return []
        at, name = event_time(event, now), event_name(event)
        spyer = str(event.get("SpyerChannel", "")).startswith(self.spyer_prefix)
        spyee = is_leg(event, self.spied_uid, self.spied_channel, "Spyee")
        if name == "ChanSpyStart" and spyer and spyee and self.state == "originating":
            self._go("spying", at)
        elif name == "ChanSpyStop" and spyer and spyee:
            self._finish("ended", "ended", at)
        elif name == "OriginateResponse" and event.get("Response") != "Success" \
                and self.state == "originating":
            self._finish("failed", "supervisor_no_answer", at,
                         reason=str(event.get("Reason", "")))
        elif name == "Hangup" and (is_leg(event, self.spied_uid, self.spied_channel)
                                   or str(event.get("Channel", "")).startswith(self.spyer_prefix)):
            self._finish("ended", "ended", at)
        return []

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "mode": self.mode,
                "supervisor_endpoint": self.supervisor_endpoint,
                "spied_channel": self.spied_channel}


class ForceHangup(Operation):
    kind = "hangup"
    TRANSITIONS = transitions({
        "created": ("requested", "rejected"),
        "requested": ("hung_up", "rejected"),
    })
    TERMINAL = frozenset({"hung_up", "rejected"})

    def __init__(self, *, channel: str, uniqueid: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.channel, self.uniqueid = channel, uniqueid

    def start(self, now: float) -> list[Action]:
        action = actions.hangup(self.channel)
        self._go("requested", now)
        return [action]

    REJECTABLE = None  # a refused Hangup changes nothing, whatever the state

    def feed(self, event: Event, now: float) -> list[Action]:
        if not self.done and event_name(event) == "Hangup" and is_leg(
                event, self.uniqueid, self.channel):
            self._finish("hung_up", "hung_up", event_time(event, now),
                         cause=str(event.get("Cause", "")))
        return []

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "channel": self.channel, "leg_id": self.uniqueid}
