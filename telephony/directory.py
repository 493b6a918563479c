"""The tracker's live model, seen through the controller's CallDirectory protocol.

Pure: reads the tracker, builds frozen views. Roles come from PJSIP endpoint
names, which the lab and deployments share (asterisk-config/pjsip.conf.tmpl):
agent<platform>-<n>, trunk<platform>, desk<number>, anonymous (citizens).
"""

from __future__ import annotations

import re

from telephony.control.protocols import CallView, LegView
from telephony.model import STATE_UP, Leg
from telephony.ticket_context import ContextError, TicketContext
from telephony.tracker import Tracker

# "PJSIP/agent12345-1-0000002a" -> endpoint "agent12345-1"
_PJSIP = re.compile(r"^PJSIP/(?P<endpoint>.+)-[0-9a-f]{8}$")


def endpoint_of(channel: str) -> str | None:
    m = _PJSIP.match(channel)
    return m.group("endpoint") if m else None


def role_of(channel: str) -> tuple[str, str | None]:
    """(role, agent id) of a channel, from its endpoint name."""
    if channel.startswith("Local/"):
        return "local", None
    endpoint = endpoint_of(channel) or ""
    if endpoint.startswith("agent"):
        return "agent", endpoint
    if endpoint.startswith("trunk"):
        return "trunk", None
    if endpoint.startswith("desk"):
        return "desk", None
    return "caller", None


class TrackerDirectory:
    def __init__(self, tracker: Tracker, platform: str, queue: str) -> None:
        self.tracker = tracker
        self.platform = platform
        self.queue = queue

    def _leg_view(self, leg: Leg) -> LegView:
        role, agent = role_of(leg.channel)
        return LegView(
            leg_id=leg.uniqueid, channel=leg.channel, role=role, agent_id=agent,
            bridge_id=leg.bridge_id, up=leg.hangup_at is None and leg.state == STATE_UP,
        )

    def get_call(self, call_id: str) -> CallView | None:
        call = self.tracker.calls.get(call_id)
        if call is None:
            return None
        legs = [self.tracker.legs[u] for u in sorted(call.legs) if u in self.tracker.legs]
        legs.sort(key=lambda leg: leg.created_at)
        conference = next((leg.conference for leg in legs if leg.conference), None)
        queue = next((leg.queue for leg in legs if leg.queue), None) or self.queue
        return CallView(
            call_id=call.call_id, platform=self._first_receiver(call.ticket_id), queue=queue,
            legs=tuple(self._leg_view(leg) for leg in legs if leg.hangup_at is None),
            ticket=self._ticket(call.ticket_id), conference=conference,
        )

    def _ticket(self, ticket_id: str | None) -> TicketContext | None:
        ticket = self.tracker.tickets.get(ticket_id or "")
        if ticket is None:
            return None
        try:
            return TicketContext.from_mapping({"TICKET_ID": ticket.ticket_id, **ticket.context})
        except ContextError:
            return None  # a peer sent junk context; the call is still controllable

    def _first_receiver(self, ticket_id: str | None) -> str:
        """首接: the platform that opened the ticket, else this one."""
        ticket = self.tracker.tickets.get(ticket_id or "")
        origin = ticket.context.get("TICKET_ORIGIN", "") if ticket else ""
        return origin if origin in ("12345", "110") else self.platform

    def call_for_channel(self, channel: str) -> str | None:
        for leg in self.tracker.legs.values():
            if leg.channel == channel and leg.hangup_at is None:
                return leg.call_id
        return None

    def call_for_agent(self, agent_id: str) -> str | None:
        for leg in self.tracker.legs.values():
            if leg.hangup_at is None and role_of(leg.channel) == ("agent", agent_id):
                return leg.call_id
        return None
