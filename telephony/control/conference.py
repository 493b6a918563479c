"""Three-party call (三方通话) and emergency pull-in: one ConfBridge per call.

States: created -> redirecting (dual Redirect of caller + agent into
hotline-conf,<name>) -> active (both ConfbridgeJoin seen; queued parties are
originated now through hotline-out) -> returning (only the caller is left: Redirect to the owning
platform's queue) -> ended. Parties come and go inside `active`; each has its
own small lifecycle (dialing -> joined -> left, or failed).

The owner when the caller is left alone is the negotiation outcome: agreed on
12345, agreed on 110, or no agreement -> the first-receiving platform (首接).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telephony.control import actions
from telephony.control.errors import BadInput, NotFound, WrongState
from telephony.control.operation import (
    Action,
    Event,
    Operation,
    event_name,
    event_time,
    transitions,
)
from telephony.control.targets import Target
from telephony.ticket_context import TicketContext

NEGOTIATION_OUTCOMES = ("agreed_12345", "agreed_110", "no_agreement_first_receiver_keeps")


@dataclass
class Participant:
    pid: str
    target: Target
    requested_at: float
    state: str = "queued"  # queued -> dialing -> joined -> left | failed
    channel: str | None = None
    uniqueid: str | None = None
    joined_at: float | None = None
    left_at: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"participant_id": self.pid, "target": self.target.number, "state": self.state,
                "channel": self.channel, "requested_at": self.requested_at,
                "joined_at": self.joined_at, "left_at": self.left_at, "reason": self.reason}


class Conference(Operation):
    kind = "conference"
    TRANSITIONS = transitions({
        "created": ("redirecting", "rejected"),
        "redirecting": ("active", "rejected", "caller_hung_up"),
        "active": ("returning", "caller_hung_up", "ended"),
        "returning": ("ended", "caller_hung_up"),
    })
    TERMINAL = frozenset({"ended", "caller_hung_up", "rejected"})
    VERBS = frozenset({"add", "drop", "leave", "negotiate"})

    def __init__(self, *, agent_channel: str, agent_uid: str, caller_channel: str,
                 caller_uid: str, first_receiver: str, ticket: TicketContext | None,
                 purpose: str = "three_party", **kw: Any) -> None:
        super().__init__(**kw)
        self.name = f"hl{self.op_id}"
        self.purpose = purpose  # three_party | pull_in
        self.agent_channel, self.agent_uid = agent_channel, agent_uid
        self.caller_channel, self.caller_uid = caller_channel, caller_uid
        self.first_receiver = first_receiver
        self.ticket = ticket
        self.participants: dict[str, Participant] = {}
        self.members: dict[str, str] = {}  # uniqueid -> caller | agent | participant id
        self.agent_left = False
        self.negotiation: str | None = None
        self.police_dispatch_first = False
        self.return_to: str | None = None

    # --- commands -------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        out = [actions.setvar(self.caller_channel, actions.VAR_CONF_ROLE, "caller"),
               actions.setvar(self.agent_channel, actions.VAR_CONF_ROLE, "agent"),
               actions.redirect_pair_to_conference(self.caller_channel, self.agent_channel,
                                                   self.name)]
        self._go("redirecting", now)
        return out

    REJECTABLE = ("created", "redirecting")

    def request(self, verb: str, now: float, **kwargs: Any) -> list[Action]:
        if self.done:
            raise WrongState(f"conference is {self.state}", code="wrong_state", state=self.state)
        if verb == "add":
            return self.add(kwargs["target"], now)
        if verb == "drop":
            return self._drop(str(kwargs["participant_id"]))
        if verb == "leave":
            self.require_state("active", verb=verb)
            if self.members.get(self.agent_uid) != "agent":
                raise WrongState("the agent is not in the conference", code="not_in_conference")
            return [actions.hangup(self.agent_channel)]
        if verb == "negotiate":
            return self._negotiate(kwargs.get("outcome"), kwargs.get("police_dispatch_first"),
                                   now)
        return super().request(verb, now, **kwargs)

    def has_party(self, number: str) -> bool:
        """Is `number` in the room or on its way in?"""
        return any(p.target.number == number and p.state in ("queued", "dialing", "joined")
                   for p in self.participants.values())

    def add(self, target: Target, now: float) -> list[Action]:
        if self.has_party(target.number):
            raise WrongState(f"{target.number} is already in or joining the conference",
                             code="already_participant")
        pid = f"p{len(self.participants) + 1}"
        self.participants[pid] = Participant(pid, target, now)
        return self._dial(self.participants[pid]) if self.state == "active" else []

    def _dial(self, party: Participant) -> list[Action]:
        party.state = "dialing"
        return [actions.originate_into_conference(
            party.target, self.name, self.ticket,
            {actions.VAR_OP_ID: self.op_id, "HOTLINE_PARTICIPANT": party.pid})]

    def _drop(self, pid: str) -> list[Action]:
        party = self.participants.get(pid)
        if party is None:
            raise NotFound("no such participant", code="participant_not_found")
        if party.state != "joined" or not party.channel:
            raise WrongState(f"participant is {party.state}", code="wrong_state",
                             state=party.state)
        return [actions.hangup(party.channel)]

    def _negotiate(self, outcome: object, police_first: object, now: float) -> list[Action]:
        if outcome is not None and outcome not in NEGOTIATION_OUTCOMES:
            raise BadInput("unknown negotiation outcome", code="invalid_outcome",
                           allowed=list(NEGOTIATION_OUTCOMES))
        if police_first is not None and not isinstance(police_first, bool):
            raise BadInput("police_dispatch_first must be a boolean", code="invalid_flag")
        if outcome is not None:
            self.negotiation = str(outcome)
        if police_first is not None:
            self.police_dispatch_first = police_first
        self.note(now, negotiation=self.negotiation,
                  police_dispatch_first=self.police_dispatch_first)
        return []

    # --- events ---------------------------------------------------------
    def feed(self, event: Event, now: float) -> list[Action]:
        if self.done:
            return []
        at, name = event_time(event, now), event_name(event)
        uid = str(event.get("Uniqueid", ""))
        if name == "Hangup" and uid == self.caller_uid and self.state != "returning":
            return self._caller_gone(at)
        if name == "OriginateResponse":
            return self._originate_response(event, at)
        if event.get("Conference") != self.name:
            return []
        if name == "ConfbridgeJoin":
            return self._joined(event, uid, at)
        if name == "ConfbridgeLeave":
            return self._left(uid, at)
        if name == "ConfbridgeEnd":
            self._finish("ended", self.return_to or "ended", at)
        return []

    def _joined(self, event: Event, uid: str, at: float) -> list[Action]:
        channel = str(event.get("Channel", ""))
        if uid == self.caller_uid:
            self.members[uid] = "caller"
        elif uid == self.agent_uid:
            self.members[uid] = "agent"
        else:
            party = next((p for p in self.participants.values() if p.state == "dialing"
                          and channel.startswith(f"Local/{p.target.number}@")), None)
            if party is None:
                self.members[uid] = "other"
                return []
            party.state, party.channel, party.uniqueid, party.joined_at = (
                "joined", channel, uid, at)
            self.members[uid] = party.pid
        if self.state == "redirecting" and {"caller", "agent"} <= set(self.members.values()):
            self._go("active", at)
            out: list[Action] = []
            for party in self.participants.values():
                if party.state == "queued":
                    out.extend(self._dial(party))
            return out
        return []

    def _left(self, uid: str, at: float) -> list[Action]:
        role = self.members.pop(uid, None)
        if role == "caller":
            if self.state == "returning":
                self._finish("ended", str(self.return_to), at)
                return []
            return self._caller_gone(at)
        if role == "agent":
            self.agent_left = True
            self.note(at, left="agent")
        elif role and role in self.participants:
            party = self.participants[role]
            party.state, party.left_at = "left", at
            self.note(at, left=role)
        return self._maybe_return(at)

    def _originate_response(self, event: Event, at: float) -> list[Action]:
        if event.get("Response") == "Success":
            return []
        channel = str(event.get("Channel", ""))
        party = next((p for p in self.participants.values() if p.state == "dialing"
                      and channel.startswith(f"Local/{p.target.number}@")), None)
        if party is None:
            return []
        party.state, party.reason, party.left_at = "failed", str(event.get("Reason", "")), at
        if self.state == "active":
            self.note(at, failed=party.pid)
        return self._maybe_return(at)

    def _maybe_return(self, at: float) -> list[Action]:
        """Only the caller left, nobody joining: send the caller to the owning queue."""
        if self.state != "active" or set(self.members.values()) != {"caller"}:
            return []
        if any(p.state == "dialing" for p in self.participants.values()):
            return []
        owner = self.owner()
        self._go("returning", at, owner=owner)
        if owner == self.platform:
            self.return_to = "returned_to_queue"
            return [actions.redirect(self.caller_channel, actions.ROUTE_CONTEXT,
                                     actions.QUEUE_FRONT)]
        self.return_to = f"transferred_to_{owner}"
        return [actions.redirect(self.caller_channel, actions.XFER_CONTEXT, owner)]

    def _caller_gone(self, at: float) -> list[Action]:
        """The citizen hung up: nobody else needs to stay in the room."""
        self._finish("caller_hung_up", "caller_hung_up", at)
        out: list[Action] = []
        if self.members.get(self.agent_uid) == "agent":
            out.append(actions.hangup(self.agent_channel))
        out.extend(actions.hangup(p.channel) for p in self.participants.values()
                   if p.state == "joined" and p.channel)
        return out

    def reconcile(self, call: Any, now: float) -> None:
        super().reconcile(call, now)
        if self.done or self.state != "redirecting":
            return
        agent = call.leg(self.agent_uid)
        if call.conference != self.name and agent is not None and call.bridged_peer(agent):
            # Caller and agent are still in their two-party bridge: the Redirect never ran.
            self._finish("rejected", "not_executed", now)

    def owner(self) -> str:
        agreed = {"agreed_12345": "12345", "agreed_110": "110"}
        return agreed.get(self.negotiation or "", self.first_receiver)

    def setup_samples(self) -> list[dict[str, Any]]:
        samples = []
        for p in self.participants.values():
            if p.state == "queued" or p.state == "dialing":
                continue
            end = p.joined_at if p.joined_at is not None else p.left_at
            outcome = "answered" if p.joined_at is not None else "failed"
            samples.append({"from": self.platform, "to": p.target.number, "mode": "conference",
                            "outcome": outcome,
                            "seconds": max(0.0, (end or p.requested_at) - p.requested_at)})
        return samples

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "purpose": self.purpose, "conference": self.name,
                "agent_channel": self.agent_channel, "caller_channel": self.caller_channel,
                "agent_left": self.agent_left, "negotiation": self.negotiation,
                "police_dispatch_first": self.police_dispatch_first,
                "first_receiver": self.first_receiver, "owner": self.owner(),
                "return_to": self.return_to,
                "participants": [p.to_dict() for p in self.participants.values()]}
