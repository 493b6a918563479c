"""AMI events -> live call model + domain events. Pure: no I/O, no asyncio.

Feed it AMI events (dicts of headers exactly as panoramisk delivers them) in
arrival order; each `feed()` returns the domain events that event caused.

Tolerance: events for channels, bridges or conferences we never saw (we
connected mid-call, or an event got lost) are counted in `anomalies` and, where
they carry enough headers, adopt the object into the model. Nothing raises.
Events for legs that recently hung up are dropped (counted as `late_event`)
instead of resurrecting them, which would leak memory.

Bounded memory: a leg leaves the model at its Hangup; a call leaves when its
last leg has gone (`call.ended` is its final event); empty bridges are dropped.
Only counters outlive calls.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from telephony import domain_events as de
from telephony.domain_events import DomainEvent
from telephony.model import (
    STATE_RINGING,
    STATE_UP,
    TICKET_VARS,
    Bridge,
    Call,
    Conference,
    Leg,
    Ticket,
    Transfer,
    parse_chan_variables,
)
from telephony.ticket_context import FIELDS

Event = Mapping[str, Any]

# (ChanVariable header, Uniqueid header) pairs each event type carries: most
# carry one unprefixed channel snapshot; dial, queue, transfer and Local events more.
_PLAIN = (("ChanVariable", "Uniqueid"),)


def _with_prefixes(*prefixes: str) -> tuple[tuple[str, str], ...]:
    return tuple((p + "ChanVariable", p + "Uniqueid") for p in prefixes)


_VAR_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "DialBegin": _with_prefixes("", "Dest"),
    "DialEnd": _with_prefixes("", "Dest"),
    "AgentCalled": _with_prefixes("", "Dest"),
    "AgentConnect": _with_prefixes("", "Dest"),
    "BlindTransfer": _with_prefixes("Transferer", "Transferee"),
    "AttendedTransfer": _with_prefixes("OrigTransferer", "SecondTransferer", "Transferee",
                                       "TransferTarget"),
    "LocalBridge": _with_prefixes("LocalOne", "LocalTwo"),
    "LocalOptimizationBegin": _with_prefixes("LocalOne", "LocalTwo"),
    # A VarSet's own Variable/Value says what changed; its snapshot is read on
    # the channel's next event, once, instead of once per variable set.
    "VarSet": (),
}
# TICKET_* variable -> its ticket_context.FIELDS name (TICKET_ID is the fact's ticket).
_CONTEXT_FIELD = {var: name for name, (var, _h, _n) in FIELDS.items() if name != "ticket_id"}
_FINISHED_KIND = {"completed": de.TRANSFER_COMPLETED, "failed": de.TRANSFER_FAILED,
                  "cancelled": de.TRANSFER_CANCELLED}
_FAILED_DIAL = frozenset({"BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL", "DONTCALL"})
# DomainEvent(*fact) without the NamedTuple's Python-level __new__: one fewer frame per fact.
_new_fact = tuple.__new__
RECENTLY_GONE_MAX = 8192  # hung-up uniqueids remembered to drop late events
# A DTMF atxfer puts the call on Hold, waits out the digit timeout (3 s in the lab),
# then dials: a Hold this recent before the agent leaves its bridge is the initiation.
ATXFER_HOLD_WINDOW = 10.0


class Tracker:
    def __init__(self) -> None:
        self.legs: dict[str, Leg] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, Bridge] = {}
        self.conferences: dict[str, Conference] = {}
        self.tickets: dict[str, Ticket] = {}
        self._call_by_linkedid: dict[str, str] = {}
        # Recently hung-up uniqueids: a set to look up, a deque to forget the oldest.
        # (Evicting the first key of an insertion-ordered dict rescans its deleted slots.)
        self._gone: set[str] = set()
        self._gone_order: deque[str] = deque()
        self._last_raw: object = None
        self._last_vars: dict[str, str] = {}
        self._empty_raw: object = None
        self.anomalies: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()  # calls, legs, conferences, tickets, transfers.*
        self.events_seen = 0
        self.events_ignored = 0
        self._transfer_seq = 0
        self._ts = 0.0
        self._out: list[DomainEvent] = []
        # None: a known event that carries nothing the model needs.
        self._handlers: dict[str, Callable[[Event, Leg | None], None] | None] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "Hangup": self._on_hangup,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            # A bridge enters the model with its first member (BridgeEnter carries
            # the bridge snapshot) and leaves with its last, so no empty bridge
            # can linger when a BridgeDestroy is lost.
            "BridgeCreate": None,
            "BridgeDestroy": self._on_bridge_destroy,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "ConfbridgeStart": self._on_conf_start,
            "ConfbridgeJoin": self._on_conf_join,
            "ConfbridgeLeave": self._on_conf_leave,
            "ConfbridgeEnd": self._on_conf_end,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerLeave": self._on_queue_leave,
            "QueueCallerAbandon": self._on_queue_abandon,
            "AgentConnect": self._on_agent_connect,
            "AgentCalled": self._on_agent_called,
            "UserEvent": self._on_user_event,
            "VarSet": self._on_varset,
            "Rename": self._on_rename,
            "LocalBridge": self._on_local_bridge,
            "LocalOptimizationBegin": self._on_local_optimization,
            "LocalOptimizationEnd": None,
            "Hold": self._on_hold,
            "Unhold": self._on_unhold,
            "CoreShowChannel": self._on_core_show_channel,
            "BridgeListItem": None,  # members come from CoreShowChannel
        }
        # name -> (handler, the (ChanVariable, Uniqueid) header pairs to read)
        self._routes = {name: (handler, _VAR_KEYS.get(name, _PLAIN))
                        for name, handler in self._handlers.items()}

    @property
    def handled_events(self) -> frozenset[str]:
        """The AMI event names the tracker reads: what an AMI session should subscribe to."""
        return frozenset(self._handlers)

    # ------------------------------------------------------------------ entry

    def feed(self, event: Event) -> list[DomainEvent]:
        self.events_seen += 1
        name = event.get("Event")
        route = self._routes.get(name)  # type: ignore[arg-type]
        if route is None:
            self.events_ignored += 1
            return []
        handler, var_keys = route
        if handler is None:  # known, and nothing in it we need
            return []
        raw_ts = event.get("Timestamp")
        if raw_ts:
            try:
                self._ts = float(raw_ts)
            except ValueError:
                self.anomalies["bad_timestamp"] += 1
        out: list[DomainEvent]
        out = self._out = []
        # The event's own (unprefixed) channel when its snapshot made us look it up:
        # handed to the handler so it needn't look it up again. None: not looked up
        # or unknown, and the handler resolves it itself (counting anomalies).
        own = None
        try:
            # Most events repeat the channel's previous lines: skip those.
            if var_keys is _PLAIN:  # the usual case, without the loop
                raw = event.get("ChanVariable")
                if raw:
                    own = self.legs.get(event.get("Uniqueid"))  # type: ignore[arg-type]
                    if own is not None and raw != own.raw_vars:
                        self._learn_vars(own, raw)
            else:
                legs = self.legs
                for vars_key, uid_key in var_keys:
                    raw = event.get(vars_key)
                    if raw:
                        leg = legs.get(event.get(uid_key))  # type: ignore[arg-type]
                        if uid_key == "Uniqueid":
                            own = leg
                        if leg is not None and raw != leg.raw_vars:
                            self._learn_vars(leg, raw)
            handler(event, own)
        except (KeyError, ValueError, TypeError, AttributeError):
            # Malformed input (missing/odd headers): counted, never fatal.
            self.anomalies[f"malformed:{name}"] += 1
        return out

    # ------------------------------------------------------------- emitting

    def _emit(self, kind: str, /, leg: Leg | None = None, call: Call | None = None,
              ts: float | None = None, **data: Any) -> None:
        fact: tuple[Any, ...]
        if leg is not None:
            if call is None:
                call = self.calls.get(leg.call_id)
            fact = (kind, self._ts if ts is None else ts, leg.call_id,
                    (call.ticket_id if call is not None else None) or leg.ticket_id,
                    leg.uniqueid, data)
        elif call is not None:
            fact = (kind, self._ts if ts is None else ts, call.call_id, call.ticket_id, None, data)
        else:
            fact = (kind, self._ts if ts is None else ts, None, None, None, data)
        self._out.append(_new_fact(DomainEvent, fact))

    # ------------------------------------------------------------ legs/calls

    def _leg(self, uid: str | None, *, why: str = "unknown_leg") -> Leg | None:
        """A known leg, or None (counted) for an unknown one."""
        if not uid:
            return None
        leg = self.legs.get(uid)
        if leg is None:
            self.anomalies["late_event" if uid in self._gone else why] += 1
        return leg

    def _leg_or_adopt(self, event: Event, prefix: str = "") -> Leg | None:
        """A known leg, or one built from the event's `<prefix>` channel snapshot."""
        uid = event.get(prefix + "Uniqueid")
        if not uid:
            return None
        leg = self.legs.get(uid)
        if leg is not None:
            return leg
        if uid in self._gone:
            self.anomalies["late_event"] += 1
            return None
        self.anomalies["adopted_leg"] += 1
        return self._create_leg(event, prefix)

    def _create_leg(self, event: Event, prefix: str = "") -> Leg:
        uid = event[prefix + "Uniqueid"]
        linkedid = event.get(prefix + "Linkedid") or uid
        raw_vars = event.get(prefix + "ChanVariable")
        ticket_vars = self._parse_vars(raw_vars) if raw_vars else {}
        call = self._call_for(linkedid, ticket_vars.get("TICKET_ID"))
        leg = Leg(
            uniqueid=uid,
            channel=event.get(prefix + "Channel", ""),
            linkedid=linkedid,
            call_id=call.call_id,
            created_at=self._ts,
            caller_num=event.get(prefix + "CallerIDNum", ""),
            exten=event.get(prefix + "Exten", ""),
            context=event.get(prefix + "Context", ""),
        )
        leg.raw_vars = raw_vars
        self.legs[uid] = leg
        call.legs.add(uid)
        self.totals["legs"] += 1
        if ticket_vars:
            self._learn_ticket(leg, ticket_vars, created=True)
        self._emit(de.LEG_CREATED, leg, channel=leg.channel, exten=leg.exten)
        state = event.get(prefix + "ChannelState", "")
        if state.isdigit():
            self._set_state(leg, int(state))
        elif state:
            self.anomalies["bad_channel_state"] += 1
        return leg

    def _call_for(self, linkedid: str, ticket_id: str | None) -> Call:
        if ticket_id and ticket_id in self.tickets:
            for cid in self.tickets[ticket_id].call_ids:
                if cid in self.calls:
                    return self.calls[cid]
        by_linkedid = self._call_by_linkedid.get(linkedid)
        if by_linkedid is not None and by_linkedid in self.calls:
            return self.calls[by_linkedid]
        call_id = linkedid
        while call_id in self.calls:  # a linkedid reused by an older, merged-away call
            call_id += "+"
        call = Call(call_id=call_id, started_at=self._ts, linkedids=(linkedid,))
        self.calls[call_id] = call
        self._call_by_linkedid[linkedid] = call_id
        self.totals["calls"] += 1
        self._emit(de.CALL_STARTED, call=call)
        return call

    def _same_call(self, a: Leg, b: Leg) -> Call:
        """Make legs a and b one call (merging two calls if needed); return it."""
        if a.call_id == b.call_id:
            return self.calls[a.call_id]
        ca, cb = self.calls[a.call_id], self.calls[b.call_id]
        keep, gone = (ca, cb) if (ca.started_at, ca.call_id) <= (cb.started_at, cb.call_id) else (
            cb, ca)
        for uid in gone.legs:
            self.legs[uid].call_id = keep.call_id
        keep.legs |= gone.legs
        for linkedid in gone.linkedids:
            self._call_by_linkedid[linkedid] = keep.call_id
        keep.linkedids += gone.linkedids
        for transfer in gone.transfers:
            transfer.call_id = keep.call_id
        keep.transfers += gone.transfers
        for name in gone.conferences or ():
            conf = self.conferences.get(name)
            if conf is not None:
                conf.call_id = keep.call_id
            keep.conferences = (keep.conferences or set()) | {name}
        if gone.ticket_id:
            ticket = self.tickets.get(gone.ticket_id)
            if ticket is not None:
                ticket.call_ids.discard(gone.call_id)
                ticket.call_ids.add(keep.call_id)
            if keep.ticket_id is None:
                keep.ticket_id = gone.ticket_id
            elif keep.ticket_id != gone.ticket_id:
                self.anomalies["call_with_two_tickets"] += 1
        del self.calls[gone.call_id]
        self.totals["calls"] -= 1  # "calls" counts distinct calls: this one was part of keep
        self.totals["calls_merged"] += 1
        self._emit(de.CALL_MERGED, call=keep, merged=gone.call_id)
        return keep

    def _learn_ticket(self, leg: Leg, ticket_vars: Mapping[str, str],
                      created: bool = False) -> None:
        """Attach the leg (and its call) to the ticket these variables name.

        `created`: the leg is being created with them, so its leg.created step
        (on the ticket's timeline) names its channel already.
        """
        ticket_id = ticket_vars.get("TICKET_ID") or leg.ticket_id
        if not ticket_id:  # context before the id (unusual): keep it until the id comes
            leg.early_context = {**(leg.early_context or {}), **ticket_vars}
            return
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            ticket = self.tickets[ticket_id] = Ticket(ticket_id, first_seen=self._ts)
            self.totals["tickets"] += 1
        context = ticket.context
        changed = {k: v for k, v in ticket_vars.items() if context.get(k) != v}
        context.update(ticket_vars)
        if leg.ticket_id == ticket_id and leg.call_id in ticket.call_ids:
            # only more context for a ticket this call already has
            self._context_changed(leg, changed)
            return
        if leg.ticket_id is not None and leg.ticket_id != ticket_id:
            self.anomalies["ticket_changed"] += 1
        leg.ticket_id = ticket_id
        if leg.early_context:
            ticket.context.update(leg.early_context)
            ticket.context["TICKET_ID"] = ticket_id
            leg.early_context = None
        call = self.calls[leg.call_id]
        if call.ticket_id is None:
            call.ticket_id = ticket_id
        elif call.ticket_id != ticket_id:
            self.anomalies["call_with_two_tickets"] += 1
        # Legs of one ticket are one call, even when Asterisk didn't link them
        # (ConfBridge, Originate, a trunk leg arriving on this node).
        for other_id in list(ticket.call_ids):
            other = self.calls.get(other_id)
            if other is not None and other.call_id != call.call_id and other.legs:
                call = self._same_call(leg, self.legs[next(iter(other.legs))])
        ticket.call_ids.add(call.call_id)
        # A leg that joins the ticket after it was created: its channel goes with the
        # fact, as its own leg.created came before the ticket and is not on the timeline.
        if created:
            self._context_changed(leg, changed)
        else:
            self._context_changed(leg, changed, channel=leg.channel)

    def _context_changed(self, leg: Leg, changed: Mapping[str, str], **extra: str) -> None:
        """A ticket.context fact for what the variables changed (the id is the fact's own)."""
        data: dict[str, Any] = {_CONTEXT_FIELD[k]: v for k, v in changed.items()
                                if k in _CONTEXT_FIELD}
        data.update(extra)
        if data:
            self._emit(de.TICKET_CONTEXT, leg, **data)

    def _learn_vars(self, leg: Leg, raw: str | list[str]) -> None:
        """Ticket variables from one channel snapshot's ChanVariable header(s).

        Read on every event type: inherited variables (__TICKET_ID) reach a new
        channel without a VarSet, so its first snapshots are how we learn them.
        """
        leg.raw_vars = raw
        ticket_vars = self._parse_vars(raw)
        if ticket_vars:
            self._learn_ticket(leg, ticket_vars)

    def _parse_vars(self, raw: str | list[str]) -> dict[str, str]:
        """parse_chan_variables, remembering the last two distinct answers.

        Consecutive events mostly carry the same lines: the legs of one call share
        inherited values, and fresh channels all send the same empty "NAME=" set.
        The result is shared, so callers copy it, never mutate it.
        """
        if raw == self._last_raw:
            return self._last_vars
        if raw == self._empty_raw:
            return {}
        parsed = parse_chan_variables(raw)
        if parsed:
            self._last_raw, self._last_vars = raw, parsed
        else:
            self._empty_raw = raw
        return parsed

    def _set_state(self, leg: Leg, state: int) -> None:
        leg.state = state
        if state == STATE_RINGING and leg.ringing_at is None:
            leg.ringing_at = self._ts
            kind = de.LEG_RINGING
        elif state == STATE_UP and leg.answered_at is None:
            leg.answered_at = self._ts
            kind = de.LEG_ANSWERED
        else:
            return  # only the first ring and the first answer are facts
        call = self.calls.get(leg.call_id)
        self._emit(kind, leg, call)
        if call is not None and call.transfers:
            self._transfer_target_progress(leg)

    def _end_leg(self, leg: Leg) -> None:
        uid = leg.uniqueid
        self.legs.pop(uid, None)
        if uid not in self._gone:  # a reused uniqueid keeps its place, as in a dict
            self._gone.add(uid)
            self._gone_order.append(uid)
            if len(self._gone_order) > RECENTLY_GONE_MAX:
                self._gone.discard(self._gone_order.popleft())
        if leg.local_peer and leg.local_peer in self.legs:
            self.legs[leg.local_peer].local_peer = None
        call = self.calls.get(leg.call_id)
        if call is None:
            return
        call.legs.discard(leg.uniqueid)
        if not call.legs:
            self._end_call(call)

    def _end_call(self, call: Call) -> None:
        for transfer in call.open_transfers():
            self._finish_transfer(transfer, ok=False, reason="call_ended")
        for name in call.conferences or ():  # a lost ConfbridgeEnd must not leak it
            conf = self.conferences.get(name)
            if conf is not None and conf.call_id == call.call_id and not conf.members:
                del self.conferences[name]
        self._emit(de.CALL_ENDED, call=call, duration=round(self._ts - call.started_at, 6),
                   transfers=len(call.transfers))
        del self.calls[call.call_id]
        for linkedid in call.linkedids:
            if self._call_by_linkedid.get(linkedid) == call.call_id:
                del self._call_by_linkedid[linkedid]
        if call.ticket_id and call.ticket_id in self.tickets:
            ticket = self.tickets[call.ticket_id]
            ticket.call_ids.discard(call.call_id)
            if not ticket.call_ids:
                del self.tickets[call.ticket_id]

    # ------------------------------------------------------------- handlers

    def _on_newchannel(self, event: Event, own: Leg | None) -> None:
        uid = event["Uniqueid"]
        if uid in self.legs:
            self.anomalies["duplicate_newchannel"] += 1
            return
        self._create_leg(event)

    def _on_newstate(self, event: Event, own: Leg | None) -> None:
        state = int(event["ChannelState"])  # validate before touching the model
        leg = own if own is not None else self._leg_or_adopt(event)
        if leg is not None:
            self._set_state(leg, state)

    def _on_hangup(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg(event.get("Uniqueid"))
        if leg is None:
            return
        if leg.bridge_id is not None:  # Hangup before BridgeLeave: leave it implicitly
            self._leave_bridge(leg, self.bridges.get(leg.bridge_id))
        if leg.conference is not None:
            self._leave_conference(leg, self.conferences.get(leg.conference))
        leg.hangup_at = self._ts
        leg.hangup_cause = event.get("Cause", "")
        call = self.calls.get(leg.call_id)
        self._emit(de.LEG_LEFT, leg, call, channel=leg.channel, cause=leg.hangup_cause,
                   cause_txt=event.get("Cause-txt", ""))
        if call is not None and call.transfers:
            self._transfer_leg_gone(leg)
        self._end_leg(leg)

    def _on_dial_begin(self, event: Event, own: Leg | None) -> None:
        dest = self._leg_or_adopt(event, "Dest")
        src = own if own is not None else self.legs.get(event.get("Uniqueid", ""))
        if dest is None or src is None:
            return  # an Originate dials without a source channel
        dest.dialed_by = src.uniqueid
        self._same_call(src, dest)
        call = self.calls[src.call_id]
        for transfer in call.open_transfers():
            if transfer.transferee == src.uniqueid and transfer.target is None:
                transfer.target = dest.uniqueid
                return
        if self._moved_out_of_bridge(src) and src.prev_bridge not in self.bridges:
            # The leg left a bridge alive, that bridge dissolved (so this is no
            # attended-transfer consultation), and it now dials on: a Redirect.
            transfer = self._start_transfer(
                call, "redirect", initiated_at=src.left_bridge_at or self._ts,
                transferee=src.uniqueid, destination=event.get("DialString", ""))
            transfer.target = dest.uniqueid

    def _on_dial_end(self, event: Event, own: Leg | None) -> None:
        dest = self.legs.get(event.get("DestUniqueid", ""))
        status = event.get("DialStatus", "")
        if dest is None or status not in _FAILED_DIAL:
            return
        call = self.calls[dest.call_id]
        for transfer in list(call.open_transfers()):
            if transfer.target == dest.uniqueid:
                if status == "CANCEL":  # the dialling side (the caller) gave up
                    transfer.caller_drop_at = self._ts
                    self._finish_transfer(transfer, ok=False, reason="caller_drop")
                else:
                    self._finish_transfer(transfer, ok=False, reason=status.lower())

    def _bridge(self, event: Event, bridge_id: str) -> Bridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None:
            bridge = self.bridges[bridge_id] = Bridge(
                bridge_id,
                bridge_type=event.get("BridgeType", ""),
                technology=event.get("BridgeTechnology", ""),
                name=event.get("BridgeName", ""),
                creator=event.get("BridgeCreator", ""),
            )
        return bridge

    def _on_bridge_destroy(self, event: Event, own: Leg | None) -> None:
        bridge = self.bridges.pop(event["BridgeUniqueid"], None)
        if bridge is None:
            return  # already dropped when it emptied
        for uid in list(bridge.members):
            self.anomalies["destroyed_with_members"] += 1
            leg = self.legs.get(uid)
            if leg is not None:
                self._leave_bridge(leg, bridge)

    def _on_bridge_enter(self, event: Event, own: Leg | None) -> None:
        bridge_id = event["BridgeUniqueid"]  # required: check before touching the model
        leg = own if own is not None else self._leg_or_adopt(event)
        if leg is None:
            return
        self._enter_bridge(leg, self._bridge(event, bridge_id), swap=event.get("SwapUniqueid"))

    def _enter_bridge(self, leg: Leg, bridge: Bridge, swap: str | None = None) -> None:
        if leg.bridge_id == bridge.uniqueid:
            return
        if leg.bridge_id is not None:
            # Invariant: one bridge at a time. A missed BridgeLeave is repaired here.
            self.anomalies["enter_while_bridged"] += 1
            self._leave_bridge(leg, self.bridges.get(leg.bridge_id))
        if swap and swap in bridge.members:
            swapped = self.legs.get(swap)
            if swapped is not None:  # Local channel optimised away: the new leg takes its place
                self._leave_bridge(swapped, bridge, swapped_by=leg.uniqueid)
            else:
                bridge.members.discard(swap)
        # (Re)register: swapping out its last member just dropped it as empty.
        self.bridges[bridge.uniqueid] = bridge
        bridge.members.add(leg.uniqueid)
        leg.bridge_id = bridge.uniqueid
        if leg.bridged_at is None:
            leg.bridged_at = self._ts
        for uid in bridge.members:
            if uid != leg.uniqueid and uid in self.legs:
                self._same_call(leg, self.legs[uid])
        peers = sorted(bridge.members)
        peers.remove(leg.uniqueid)
        if swap:  # Local optimisation: this leg replaces that Local half
            self._emit(de.LEG_BRIDGED, leg, bridge=bridge.uniqueid, peers=peers, swapped=swap)
        else:
            self._emit(de.LEG_BRIDGED, leg, bridge=bridge.uniqueid, peers=peers)
        self._transfer_bridged(leg, bridge)
        if not leg.is_local and not bridge.is_conference:
            self._consultation_moves(leg, bridge)

    def _on_bridge_leave(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg(event.get("Uniqueid"))
        if leg is None:
            return
        bridge_id = event["BridgeUniqueid"]
        if leg.bridge_id != bridge_id:
            if leg.bridge_id is not None:  # leaving a bridge it isn't in: out of order
                self.anomalies["leave_not_member"] += 1
            return  # already left (e.g. swapped out by a Local optimisation)
        if leg.optimizing:  # Asterisk 22 sends this leave before the swapping BridgeEnter
            self._leave_bridge(leg, self.bridges.get(bridge_id), local_optimization=True)
        else:
            self._leave_bridge(leg, self.bridges.get(bridge_id))

    def _leave_bridge(self, leg: Leg, bridge: Bridge | None, **extra: Any) -> None:
        bridge_id = leg.bridge_id if bridge is None else bridge.uniqueid
        leg.bridge_id = None
        leg.left_bridge_at = self._ts
        leg.prev_bridge = bridge_id
        if bridge is not None:
            bridge.members.discard(leg.uniqueid)
            if not bridge.members:  # (BridgeDestroy may have dropped it already)
                self.bridges.pop(bridge.uniqueid, None)
        self._emit(de.LEG_UNBRIDGED, leg, bridge=bridge_id, **extra)

    def _on_core_show_channel(self, event: Event, own: Leg | None) -> None:
        """A CoreShowChannels item (state rebuild after a (re)connect)."""
        uid = event["Uniqueid"]
        leg = self.legs.get(uid) or self._create_leg(event)
        bridge_id = event.get("BridgeId")
        if bridge_id:
            self._enter_bridge(leg, self._bridge({}, bridge_id))
        if event.get("Application") == "ConfBridge" and leg.conference is None:
            name = event.get("ApplicationData", "").split(",")[0]
            if name:
                self._join_conference(leg, name)

    def _on_varset(self, event: Event, own: Leg | None) -> None:
        name = event.get("Variable", "").lstrip("_")
        if name not in TICKET_VARS:
            return
        value = event.get("Value")
        leg = self.legs.get(event.get("Uniqueid", ""))
        if leg is None or not value:
            return
        if name == "TICKET_ID":
            self._learn_ticket(leg, {name: value})
            return
        # Context fields only enrich what we know: no correlation to redo.
        ticket = self.tickets.get(leg.ticket_id or "")
        if ticket is not None:
            ticket.context[name] = value
        else:
            self._learn_ticket(leg, {name: value})

    def _on_rename(self, event: Event, own: Leg | None) -> None:
        leg = self._leg(event.get("Uniqueid"))
        if leg is not None:
            leg.channel = event.get("Newname", leg.channel)

    def _on_local_bridge(self, event: Event, own: Leg | None) -> None:
        one = self._leg(event.get("LocalOneUniqueid"))
        two = self._leg(event.get("LocalTwoUniqueid"))
        if one is not None and two is not None:
            one.local_peer, two.local_peer = two.uniqueid, one.uniqueid
            self._same_call(one, two)

    def _on_local_optimization(self, event: Event, own: Leg | None) -> None:
        self._on_local_bridge(event, own)
        for key in ("LocalOneUniqueid", "LocalTwoUniqueid"):
            leg = self.legs.get(event.get(key, ""))
            if leg is not None:
                leg.optimizing = True

    def _on_hold(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg(event.get("Uniqueid"))
        if leg is not None:
            leg.held_at = self._ts

    def _on_unhold(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg(event.get("Uniqueid"))
        if leg is not None:
            leg.held_at = None

    def _on_user_event(self, event: Event, own: Leg | None) -> None:
        if event.get("UserEvent") != "HotlineKey":
            return
        leg = self._leg(event.get("Uniqueid"))
        self._emit(de.KEY_PRESSED, leg, key=event.get("Key", ""),
                   channel=event.get("Channel", ""))

    # ---------------------------------------------------------------- queues

    def _on_queue_join(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg_or_adopt(event)
        if leg is None:
            return
        leg.queue = event.get("Queue")
        leg.queued_at = self._ts
        self._emit(de.QUEUE_JOINED, leg, queue=leg.queue, position=event.get("Position", ""))

    def _on_queue_leave(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg(event.get("Uniqueid"))
        if leg is not None:
            leg.queue = leg.queued_at = None

    def _on_queue_abandon(self, event: Event, own: Leg | None) -> None:
        leg = self._leg(event.get("Uniqueid"))
        self._emit(de.QUEUE_ABANDONED, leg, queue=event.get("Queue", ""),
                   position=event.get("Position", ""), hold_time=event.get("HoldTime", ""))

    def _on_agent_called(self, event: Event, own: Leg | None) -> None:
        caller = own if own is not None else self.legs.get(event.get("Uniqueid", ""))
        agent = self._leg_or_adopt(event, "Dest")
        if caller is not None and agent is not None:
            agent.dialed_by = caller.uniqueid
            self._same_call(caller, agent)

    def _on_agent_connect(self, event: Event, own: Leg | None) -> None:
        caller = own if own is not None else self._leg(event.get("Uniqueid"))
        agent = self.legs.get(event.get("DestUniqueid", ""))
        if caller is None:
            return
        if agent is not None:
            self._same_call(caller, agent)
        self._emit(de.QUEUE_ANSWERED, caller, queue=event.get("Queue", ""),
                   agent=agent.uniqueid if agent else event.get("DestUniqueid"),
                   member=event.get("MemberName", ""), hold_time=event.get("HoldTime", ""),
                   ring_time=event.get("RingTime", ""))

    # ----------------------------------------------------------- conferences

    def _on_conf_start(self, event: Event, own: Leg | None) -> None:
        name = event["Conference"]
        if name in self.conferences:
            return
        # conference.started waits for the first join: ConfbridgeStart names no channel, so
        # only then are the call and ticket known (the ticket's timeline needs them).
        self.conferences[name] = Conference(name, started_at=self._ts,
                                            bridge_id=event.get("BridgeUniqueid"))
        self.totals["conferences"] += 1

    def _on_conf_join(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg_or_adopt(event)
        if leg is not None:
            self._join_conference(leg, event["Conference"], admin=event.get("Admin", "No"))

    def _join_conference(self, leg: Leg, name: str, admin: str = "No") -> None:
        conf = self.conferences.get(name)
        if conf is None:  # joined mid-conference (we connected late)
            self.anomalies["unknown_conference"] += 1
            conf = self.conferences[name] = Conference(name, started_at=self._ts)
            self.totals["conferences"] += 1
        if conf.call_id is None or conf.call_id not in self.calls:
            conf.call_id = leg.call_id
        elif conf.call_id != leg.call_id:
            # One conference is one call: ConfBridge doesn't merge linkedids, so we do.
            self._same_call(self.legs[next(iter(self.calls[conf.call_id].legs))], leg)
            conf.call_id = leg.call_id
        conf.members.add(leg.uniqueid)
        leg.conference = name
        call = self.calls[leg.call_id]
        call.conferences = (call.conferences or set()) | {name}
        if not conf.announced:
            conf.announced = True
            self._emit(de.CONFERENCE_STARTED, call=call, ts=conf.started_at, conference=name)
        self._emit(de.CONFERENCE_JOINED, leg, conference=name, admin=admin)
        if self._moved_out_of_bridge(leg, now_in=leg.bridge_id):
            call = self.calls[leg.call_id]
            if not any(t.kind == "redirect" and t.destination == name
                       for t in call.transfers):
                transfer = self._start_transfer(
                    call, "redirect", initiated_at=leg.left_bridge_at or self._ts,
                    transferee=leg.uniqueid, destination=name)
                self._finish_transfer(transfer, ok=True)

    def _on_conf_leave(self, event: Event, own: Leg | None) -> None:
        leg = own if own is not None else self._leg(event.get("Uniqueid"))
        if leg is not None and leg.conference is not None:
            self._leave_conference(leg, self.conferences.get(leg.conference))

    def _leave_conference(self, leg: Leg, conf: Conference | None) -> None:
        name = leg.conference
        leg.conference = None
        if conf is not None:
            conf.members.discard(leg.uniqueid)
        self._emit(de.CONFERENCE_LEFT, leg, conference=name)

    def _on_conf_end(self, event: Event, own: Leg | None) -> None:
        conf = self.conferences.pop(event["Conference"], None)
        if conf is None:
            self.anomalies["unknown_conference"] += 1
            return
        for uid in conf.members:
            leg = self.legs.get(uid)
            if leg is not None:
                leg.conference = None
        call = self.calls.get(conf.call_id or "")
        if not conf.announced:  # nobody we know of ever joined
            self._emit(de.CONFERENCE_STARTED, call=call, ts=conf.started_at, conference=conf.name)
        self._emit(de.CONFERENCE_ENDED, call=call, conference=conf.name,
                   duration=round(self._ts - conf.started_at, 6))

    # ------------------------------------------------------------- transfers

    def _start_transfer(self, call: Call, kind: str, *, initiated_at: float,
                        transferer: str | None = None, transferee: str | None = None,
                        destination: str = "") -> Transfer:
        self._transfer_seq += 1
        transfer = Transfer(f"x{self._transfer_seq}", kind, call.call_id, initiated_at,
                            transferer=transferer, transferee=transferee,
                            destination=destination)
        call.transfers += (transfer,)
        self._emit(de.TRANSFER_STARTED, call=call, ts=initiated_at, **self._transfer_data(transfer))
        return transfer

    def _finish_transfer(self, transfer: Transfer, *, ok: bool, reason: str = "",
                         status: str | None = None) -> None:
        transfer.status = status or ("completed" if ok else "failed")
        transfer.reason = reason
        transfer.finished_at = self._ts
        self.totals[f"transfers.{transfer.kind}.{transfer.status}"] += 1
        call = self.calls.get(transfer.call_id)
        self._emit(_FINISHED_KIND[transfer.status], call=call, **self._transfer_data(transfer))

    @staticmethod
    def _transfer_data(t: Transfer) -> dict[str, Any]:
        data: dict[str, Any] = {"transfer": t.transfer_id, "kind": t.kind,
                                "initiated_at": t.initiated_at}
        for name in ("transferer", "transferee", "target", "destination", "reason",
                     "target_ring_at", "target_answer_at", "caller_drop_at", "finished_at",
                     "returned_at", "returned_to"):
            value = getattr(t, name)
            if value:
                data[name] = list(value) if isinstance(value, tuple) else value
        return data

    def _moved_out_of_bridge(self, leg: Leg, now_in: str | None = None) -> bool:
        """Left a bridge alive, is in no other (but `now_in`), and no transfer explains it.

        A transfer explains the move if it involves the leg and was still open when the leg
        left: so the caller coming back after a failed blind transfer is no Redirect.
        """
        left = leg.left_bridge_at
        if left is None or leg.bridge_id != now_in or leg.prev_bridge == now_in:
            return False
        call = self.calls[leg.call_id]
        return not any(leg.uniqueid in (t.transferee, t.target, t.transferer)
                       and (t.finished_at is None or t.finished_at >= left)
                       for t in call.transfers)

    def _on_blind_transfer(self, event: Event, own: Leg | None) -> None:
        transferer = self._leg_or_adopt(event, "Transferer")
        transferee = self._leg_or_adopt(event, "Transferee")
        anchor = transferee or transferer
        if anchor is None:
            return
        if transferer is not None and transferee is not None:
            self._same_call(transferer, transferee)
        call = self.calls[anchor.call_id]
        dest = f"{event.get('Extension', '')}@{event.get('Context', '')}"
        transfer = self._start_transfer(
            call, "blind", initiated_at=self._ts,
            transferer=transferer.uniqueid if transferer else None,
            transferee=transferee.uniqueid if transferee else None, destination=dest)
        if event.get("Result") != "Success":
            self._finish_transfer(transfer, ok=False, reason=event.get("Result", "").lower())

    def _on_attended_transfer(self, event: Event, own: Leg | None) -> None:
        legs = {p: self._leg_or_adopt(event, p) for p in
                ("OrigTransferer", "SecondTransferer", "Transferee", "TransferTarget")}
        present = [leg for leg in legs.values() if leg is not None]
        if not present:
            return
        for other in present[1:]:
            self._same_call(present[0], other)
        call = self.calls[present[0].call_id]
        dest_type = event.get("DestType", "")
        second, target = legs["SecondTransferer"], legs["TransferTarget"]
        ok = event.get("Result") == "Success" and dest_type not in ("Fail", "")
        reason = "" if ok else (dest_type or event.get("Result", "")).lower()
        transferers = {event.get("OrigTransfererUniqueid"), event.get("SecondTransfererUniqueid")}
        consultation = next((t for t in call.open_transfers()
                             if t.kind == "attended" and t.transferer in transferers), None)
        if consultation is not None:  # a DTMF consultation we saw start: this is its end
            if dest_type == "Threeway":
                consultation.kind = "threeway"
            consultation.destination = (event.get("DestBridgeUniqueid") or event.get("DestApp")
                                        or consultation.destination)
            if target is not None and consultation.target is None:
                consultation.target = target.uniqueid
            self._finish_transfer(consultation, ok=ok, reason=reason)
            return
        # The transfer began when the consultation started: the agent's second
        # channel was born (phone-driven, REFER) or the target was dialled (DTMF atxfer,
        # where both transferer headers name the same channel).
        starts = [leg.created_at for leg in (target,) if leg is not None]
        if second is not None and second is not legs["OrigTransferer"]:
            starts.append(second.created_at)
        initiated = min(starts, default=self._ts)
        destination = (event.get("DestBridgeUniqueid") or event.get("DestApp")
                       or event.get("LocalOneChannel") or "")
        transfer = self._start_transfer(
            call, "threeway" if dest_type == "Threeway" else "attended", initiated_at=initiated,
            transferer=legs["OrigTransferer"].uniqueid if legs["OrigTransferer"] else None,
            transferee=legs["Transferee"].uniqueid if legs["Transferee"] else None,
            destination=destination)
        if target is not None:
            transfer.target = target.uniqueid
            transfer.target_ring_at = target.ringing_at
            transfer.target_answer_at = target.answered_at
        self._finish_transfer(transfer, ok=ok, reason=reason)

    def _transfer_target_progress(self, leg: Leg) -> None:
        call = self.calls.get(leg.call_id)
        if call is None or not call.transfers:
            return
        for transfer in call.open_transfers():
            if transfer.target == leg.uniqueid:
                if leg.state == STATE_RINGING:
                    transfer.target_ring_at = transfer.target_ring_at or leg.ringing_at
                elif leg.state == STATE_UP:
                    transfer.target_answer_at = transfer.target_answer_at or leg.answered_at

    def _transfer_bridged(self, leg: Leg, bridge: Bridge) -> None:
        call = self.calls[leg.call_id]
        if not call.transfers:
            return
        for transfer in call.transfers:
            if transfer.status == "started":
                # A DTMF consultation (from_bridge) ends with AttendedTransfer, which alone
                # tells a complete from a threeway: its target joining the caller is not enough.
                if (transfer.from_bridge is None and transfer.transferee in bridge.members
                        and transfer.target in bridge.members
                        and leg.uniqueid in (transfer.transferee, transfer.target)):
                    self._finish_transfer(transfer, ok=True)
            elif (transfer.status == "failed" and transfer.returned_at is None
                  and transfer.kind in ("blind", "redirect")
                  and transfer.transferee in bridge.members and len(bridge.members) > 1):
                # The dialplan gave the caller back to an agent (hotline-xfer-failed ->
                # hotline-return): the failed transfer's caller is talking again.
                transfer.returned_at = self._ts
                transfer.returned_to = tuple(sorted(bridge.members - {transfer.transferee}))
                self.totals[f"transfers.{transfer.kind}.returned"] += 1
                self._emit(de.TRANSFER_RETURNED, call=call, **self._transfer_data(transfer))

    def _consultation_moves(self, leg: Leg, bridge: Bridge) -> None:
        """A DTMF attended transfer, seen live (Asterisk reports it only at its end).

        The agent leaves the caller's bridge (the caller stays, on hold) for a new bridge
        holding the Local channel that dials the target: the consultation started. The
        agent back in the caller's bridge without the target: the consultation was abandoned
        (`#1`, or the target refused), which Asterisk reports with no event at all.
        """
        call = self.calls[leg.call_id]
        for transfer in call.open_transfers():
            if transfer.transferer == leg.uniqueid:
                if (transfer.kind == "attended" and bridge.uniqueid == transfer.from_bridge
                        and transfer.target not in bridge.members):
                    self._finish_transfer(transfer, ok=False, reason="cancelled",
                                          status="cancelled")
                return
        origin = self.bridges.get(leg.prev_bridge or "")
        left = leg.left_bridge_at
        if origin is None or origin is bridge or left is None or self._ts - left > 1.0:
            return
        waiting = sorted(origin.members)
        target = next((self.legs[u] for u in sorted(bridge.members)
                       if u != leg.uniqueid and u in self.legs and self.legs[u].is_local), None)
        if not waiting or target is None:
            return
        held = leg.held_at
        initiated = held if held is not None and left - held <= ATXFER_HOLD_WINDOW else left
        transfer = self._start_transfer(call, "attended", initiated_at=initiated,
                                        transferer=leg.uniqueid, transferee=waiting[0])
        transfer.from_bridge = origin.uniqueid
        transfer.target = target.uniqueid
        transfer.target_ring_at = target.ringing_at
        transfer.target_answer_at = target.answered_at

    def _transfer_leg_gone(self, leg: Leg) -> None:
        call = self.calls.get(leg.call_id)
        if call is None or not call.transfers:
            return
        for transfer in list(call.open_transfers()):
            if transfer.transferee == leg.uniqueid:
                transfer.caller_drop_at = self._ts
                self._finish_transfer(transfer, ok=False, reason="caller_drop")
            elif transfer.target == leg.uniqueid:
                self._finish_transfer(transfer, ok=False, reason="target_hangup")

    # ------------------------------------------------------------ invariants

    def check_invariants(self) -> list[str]:
        """Every broken invariant as a message; [] when the model is consistent."""
        problems: list[str] = []
        seen_in: dict[str, str] = {}
        for bridge in self.bridges.values():
            for uid in bridge.members:
                if uid in seen_in:
                    problems.append(f"leg {uid} in bridges {seen_in[uid]} and {bridge.uniqueid}")
                seen_in[uid] = bridge.uniqueid
                leg = self.legs.get(uid)
                if leg is not None and leg.bridge_id != bridge.uniqueid:
                    problems.append(f"leg {uid} listed in {bridge.uniqueid}, says {leg.bridge_id}")
        for leg in self.legs.values():
            if leg.bridge_id is not None and seen_in.get(leg.uniqueid) != leg.bridge_id:
                problems.append(f"leg {leg.uniqueid} claims bridge {leg.bridge_id}")
            call = self.calls.get(leg.call_id)
            if call is None or leg.uniqueid not in call.legs:
                problems.append(f"leg {leg.uniqueid} not in its call {leg.call_id}")
        for call in self.calls.values():
            if not call.legs:
                problems.append(f"call {call.call_id} has no legs")
        return problems
