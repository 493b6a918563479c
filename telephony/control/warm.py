"""Warm (attended) transfer: consult the target while the caller is on hold.

Atxfer puts the caller on hold and dials target@hotline-out from the agent
(through a Local channel). Then:
- complete (target answered): hang up the agent leg; Asterisk joins caller and
  target and emits AttendedTransfer;
- complete before the target answers: cancel the consult and run a blind
  transfer instead, so the caller gets hotline-xfer's return-on-failure path;
- cancel: CancelAtxfer; the agent is back with the caller (BridgeEnter);
- swap: the built-in atxferswap feature code (#4), emulated with PlayDTMF Receive (one
  action per digit). The swap itself is only seen in events: the agent entering the
  caller's bridge while the consult leg is still up is `swapped` (target held); entering
  another bridge from there is `consult_answered` again. The agent in the caller's bridge
  with the consult leg gone (either order) is `cancelled`. On Asterisk 22 an abort (#1)
  returns the agent before the target's Hangup, so the agent's last received digits
  (DTMFEnd, from the AMI `dtmf` read class) tell an abort from a swap; if they are missed,
  a Hangup within ABORT_WINDOW_S of the swap re-labels it: cancelled by phone, swaps - 1.
"""

from __future__ import annotations

from typing import Any

from telephony.control import actions
from telephony.control.blind import BlindTransfer
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

SWAP_DIGITS = "#4"  # features.conf atxferswap; see docs/control.md
ABORT_DIGITS = "#1"  # features.conf atxferabort
# Asterisk 22's abort returns the agent a few ms before the target's Hangup; a held target
# hanging up this soon after a "swap" means the swap was an abort (lab: < 10 ms).
ABORT_WINDOW_S = 0.5
_BLIND_ENDS = ("completed", "returned_to_agent", "returned_to_queue", "caller_hung_up",
               "rejected")


class WarmTransfer(Operation):
    kind = "warm_transfer"
    mode = "attended"
    TRANSITIONS = transitions({
        "created": ("requested", "rejected"),
        "requested": ("consult_ringing", "consult_answered", "consult_failed", "rejected",
                      "caller_hung_up"),
        # cancelled/completed straight from consulting: the agent used the phone's own
        # atxferabort (#1) / atxfercomplete (#2) keys instead of the service.
        "consult_ringing": ("consult_answered", "consult_failed", "cancelling", "converting",
                            "cancelled", "completed", "caller_hung_up"),
        "consult_answered": ("completing", "cancelling", "consult_failed", "swapped",
                             "cancelled", "completed", "caller_hung_up"),
        # Agent back with the caller, the answered target held in the consult bridge.
        "swapped": ("consult_answered", "completing", "cancelling", "cancelled", "completed",
                    "caller_hung_up"),
        # A refused verb action (the node said Error) returns to where we were.
        "completing": ("completed", "consult_failed", "consult_answered", "swapped",
                       "caller_hung_up"),
        "cancelling": ("cancelled", "consult_ringing", "consult_answered", "swapped",
                       "caller_hung_up"),
        "consult_failed": ("target_failed", "caller_hung_up"),
        "converting": ("blind", "consult_ringing", "caller_hung_up"),
        "blind": _BLIND_ENDS,
    })
    TERMINAL = frozenset({"completed", "cancelled", "target_failed", "caller_hung_up",
                          "rejected", "returned_to_agent", "returned_to_queue"})
    VERBS = frozenset({"complete", "cancel", "swap"})

    def __init__(self, *, agent_channel: str, agent_uid: str, caller_channel: str,
                 caller_uid: str, target_spec: Target, home_bridge: str | None = None,
                 **kw: Any) -> None:
        super().__init__(target=target_spec.number, **kw)
        self.target_spec = target_spec
        self.agent_channel, self.agent_uid = agent_channel, agent_uid
        self.caller_channel, self.caller_uid = caller_channel, caller_uid
        self.home_bridge = home_bridge  # the caller's bridge; the agent returns to it
        self.consult_prefix = f"Local/{target_spec.number}@{actions.OUT_CONTEXT}-"
        self.swaps = 0  # swaps confirmed by events
        self.swap_requests = 0
        self.consult_uid: str | None = None  # the dialled target leg (DialBegin DestUniqueid)
        self.consult_up = False
        self.agent_home = False  # is the agent in the caller's bridge?
        self.agent_digits = ""  # the last two DTMF digits received from the agent's phone
        self.blind: BlindTransfer | None = None
        self._before_verb = "created"
        self._kw = kw

    def start(self, now: float) -> list[Action]:
        action = actions.atxfer(self.agent_channel, self.target_spec)
        self._go("requested", now)
        return [action]

    def action_failed(self, reply: Any, now: float) -> None:
        message = str(reply.get("Message", ""))[:200]
        if self.blind is not None:
            self.blind.action_failed(reply, now)
            self._follow_blind(now)
        elif self.state in ("cancelling", "completing", "converting"):
            self._go(self._before_verb, now, refused=message)
        elif self.state in ("created", "requested"):
            self._finish("rejected", "rejected", now, reply=message)

    def request(self, verb: str, now: float, **kwargs: Any) -> list[Action]:
        self._before_verb = self.state
        if verb == "cancel":
            self.require_state("consult_ringing", "consult_answered", "swapped", verb=verb)
            self._go("cancelling", now)
            return [actions.cancel_atxfer(self.agent_channel)]
        if verb == "complete":
            self.require_state("consult_ringing", "consult_answered", "swapped", verb=verb)
            if self.state == "consult_ringing":
                self._go("converting", now)  # behave like blind: see module doc
                return [actions.cancel_atxfer(self.agent_channel)]
            self._go("completing", now)
            return [actions.hangup(self.agent_channel)]
        if verb == "swap":
            self.require_state("consult_answered", "swapped", verb=verb)
            self.swap_requests += 1
            self.note(now, swap_requested=self.swap_requests)
            return actions.feature_digits(self.agent_channel, SWAP_DIGITS)
        return super().request(verb, now, **kwargs)

    def _is_consult(self, event: Event) -> bool:
        channel = str(event.get("Channel", ""))
        return channel.startswith(self.consult_prefix) or is_leg(
            event, self.agent_uid, self.agent_channel)

    def feed(self, event: Event, now: float) -> list[Action]:
        if self.done:
            return []
        if self.blind is not None:
            self.blind.feed(event, now)
            self._follow_blind(now)
            return []
        at, name = event_time(event, now), event_name(event)
        if name == "Hangup" and is_leg(event, self.caller_uid, self.caller_channel):
            self._finish("caller_hung_up", "caller_hung_up", at)
        elif name == "DTMFEnd" and event.get("Direction") == "Received" and is_leg(
                event, self.agent_uid, self.agent_channel):
            self.agent_digits = (self.agent_digits + str(event.get("Digit", "")))[-2:]
        elif name == "Hangup" and self.consult_uid and event.get("Uniqueid") == self.consult_uid:
            return self._consult_gone(at)
        elif name == "DialBegin" and self.state == "requested" and self._is_consult(event):
            self.consult_uid = str(event.get("DestUniqueid", "")) or None
            self.consult_up = self.consult_uid is not None
            self._go("consult_ringing", at, dest=str(event.get("DestChannel", "")))
        elif name == "DialEnd" and self._is_consult(event) and self.state in (
                "requested", "consult_ringing"):
            if event.get("DialStatus") == "ANSWER":
                self._go("consult_answered", at)
            else:
                self._go("consult_failed", at, dial_status=str(event.get("DialStatus", "")))
        elif name == "AttendedTransfer" and is_leg(event, self.agent_uid, self.agent_channel,
                                                   "OrigTransferer"):
            self._attended_result(event, at)
        elif name == "BridgeEnter" and is_leg(event, self.agent_uid, self.agent_channel):
            home = self.home_bridge is None or event.get("BridgeUniqueid") == self.home_bridge
            self.agent_home = home
            if home:
                return self._agent_back(at)
            if self.state == "swapped":  # swapped back: the agent rejoined the target
                self.swaps += 1
                self._go("consult_answered", at, swap=self.swaps,
                         bridge=str(event.get("BridgeUniqueid", "")))
        return []

    def _consult_gone(self, at: float) -> list[Action]:
        """The target leg hung up (abort, or the target left while held)."""
        self.consult_up = False
        if self.state == "swapped":
            swapped_at = self.steps[-1].at
            if at - swapped_at <= ABORT_WINDOW_S:  # it was #1, not #4: see module doc
                self.swaps -= 1
                self._finish("cancelled", "cancelled", at, by="phone", seen_as_swap=True)
            else:
                self._finish("cancelled", "cancelled", at, by="consult_hangup")
        elif self.state == "cancelling" and self.agent_home:
            self._finish("cancelled", "cancelled", at, by="consult_hangup")
        return []

    def _attended_result(self, event: Event, at: float) -> None:
        if self.state not in ("consult_ringing", "consult_answered", "completing"):
            return
        if event.get("Result", "Success") == "Success":
            self._finish("completed", "completed", at, dest_type=str(event.get("DestType", "")))
        else:
            self._go("consult_failed", at, result=str(event.get("Result", "")))

    def _agent_back(self, at: float) -> list[Action]:
        """The agent re-entered the caller's bridge: the consult is over."""
        if self.state == "cancelling":
            self._finish("cancelled", "cancelled", at)
        elif self.state in ("consult_ringing", "consult_answered") and self.home_bridge:
            aborted = self.agent_digits == ABORT_DIGITS
            if self.consult_up and self.state == "consult_answered" and not aborted:
                self.swaps += 1  # atxferswap: the target waits in the consult bridge
                self._go("swapped", at, swap=self.swaps)
            else:
                self._finish("cancelled", "cancelled", at, by="phone")
        elif self.state == "consult_failed":
            self._finish("target_failed", "target_failed", at)
        elif self.state == "converting":
            self._go("blind", at)
            kw = {k: v for k, v in self._kw.items() if k != "now"}
            self.blind = BlindTransfer(
                agent_channel=self.agent_channel, agent_uid=self.agent_uid,
                caller_channel=self.caller_channel, caller_uid=self.caller_uid,
                target_spec=self.target_spec, now=at, **kw)
            return self.blind.start(at)
        return []

    def _follow_blind(self, now: float) -> None:
        assert self.blind is not None
        if self.blind.done:
            self._finish(self.blind.state, str(self.blind.outcome), self.blind.steps[-1].at,
                         via="blind")

    def setup_samples(self) -> list[dict[str, Any]]:
        if not self.done or self.state == "rejected":
            return []
        if self.blind is not None:
            return [{**s, "mode": "attended_blind"} for s in self.blind.setup_samples()]
        end = self.step_time("consult_answered") or self.steps[-1].at
        return [{"from": self.platform, "to": self.target, "mode": self.mode,
                 "outcome": self.outcome, "seconds": max(0.0, end - self.created_at)}]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "mode": self.mode, "swaps": self.swaps,
                "swap_requests": self.swap_requests,
                "agent_channel": self.agent_channel, "caller_channel": self.caller_channel,
                "blind": self.blind.to_dict() if self.blind else None}

    def reconcile(self, call: Any, now: float) -> None:
        super().reconcile(call, now)
        if self.blind is not None and not self.done:
            self.blind.reconcile(call, now)
            self._follow_blind(now)
        elif self.state == "requested":
            agent = call.leg(self.agent_uid)
            if agent is not None and agent.up and call.bridged_peer(agent) is not None:
                self._finish("rejected", "not_executed", now)
