"""The live call model: plain data, mutated only by the tracker.

A *leg* is one Asterisk channel. A *call* is the set of legs that belong
together (same Linkedid, dialled from one another, sharing a bridge or a
ticket). Bridges and ConfBridge conferences say who hears whom. Transfers are
tracked from initiation to their outcome. A *ticket* is the hotline work order
the call serves, known from the TICKET_* channel variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from telephony.ticket_context import CHANNEL_VARS

TICKET_VARS = frozenset(CHANNEL_VARS)

# Asterisk channel states (ChannelState header).
STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6


@dataclass(slots=True)
class Leg:
    uniqueid: str
    channel: str
    linkedid: str
    call_id: str
    created_at: float
    state: int = 0
    caller_num: str = ""
    exten: str = ""
    context: str = ""
    ticket_id: str | None = None  # the ticket's other TICKET_* values live on the Ticket
    early_context: dict[str, str] | None = None  # TICKET_* values seen before TICKET_ID
    ringing_at: float | None = None
    answered_at: float | None = None
    bridged_at: float | None = None
    left_bridge_at: float | None = None
    prev_bridge: str | None = None  # the bridge it last left, to recognise Redirect moves
    held_at: float | None = None  # last Hold not yet followed by Unhold (atxfer starts with one)
    hangup_at: float | None = None
    hangup_cause: str = ""
    bridge_id: str | None = None
    conference: str | None = None
    queue: str | None = None
    queued_at: float | None = None  # when it joined `queue` (cleared with it)
    dialed_by: str | None = None  # Uniqueid of the leg whose Dial created this one
    local_peer: str | None = None  # other half of a Local channel pair
    optimizing: bool = False  # a LocalOptimizationBegin named it: its next BridgeLeave is expected
    raw_vars: object = None  # last ChanVariable header seen, to skip re-parsing repeats

    @property
    def is_local(self) -> bool:
        return self.channel.startswith("Local/")


@dataclass(slots=True)
class Bridge:
    uniqueid: str
    bridge_type: str = ""
    technology: str = ""
    name: str = ""
    creator: str = ""
    members: set[str] = field(default_factory=set)

    @property
    def is_conference(self) -> bool:
        return self.bridge_type == "conference" or self.creator == "ConfBridge"


@dataclass(slots=True)
class Conference:
    name: str
    started_at: float
    call_id: str | None = None
    bridge_id: str | None = None
    members: set[str] = field(default_factory=set)
    announced: bool = False  # conference.started is emitted at the first join, with its call


@dataclass(slots=True)
class Transfer:
    transfer_id: str
    kind: str  # blind | attended | threeway | redirect (a consultation starts as attended)
    call_id: str
    initiated_at: float
    transferer: str | None = None  # Uniqueid of the agent leg that asked for it
    transferee: str | None = None  # the party being moved (usually the caller)
    target: str | None = None  # the new leg towards the destination
    destination: str = ""  # extension, app or bridge the transferee goes to
    status: str = "started"  # started | completed | failed | cancelled
    reason: str = ""
    target_ring_at: float | None = None
    target_answer_at: float | None = None
    finished_at: float | None = None
    caller_drop_at: float | None = None
    from_bridge: str | None = None  # where the transferee waits during a DTMF consultation
    returned_at: float | None = None  # a failed transfer's transferee was bridged again
    returned_to: tuple[str, ...] = ()  # the legs it was bridged with on its return


@dataclass(slots=True)
class Call:
    call_id: str
    started_at: float
    legs: set[str] = field(default_factory=set)
    linkedids: tuple[str, ...] = ()  # tuples: no allocation or GC tracking for the usual one
    ticket_id: str | None = None
    transfers: tuple[Transfer, ...] = ()  # most calls have none; replaced, never mutated
    conferences: set[str] | None = None  # names of conferences it holds (rarely any)

    def open_transfers(self) -> Iterable[Transfer]:
        if not self.transfers:  # the usual case: no generator to build
            return ()
        return (t for t in self.transfers if t.status == "started")


@dataclass(slots=True)
class Ticket:
    ticket_id: str
    first_seen: float
    context: dict[str, str] = field(default_factory=dict)  # TICKET_* vars as seen on the wire
    call_ids: set[str] = field(default_factory=set)


def parse_chan_variables(raw: str | list[str] | None) -> dict[str, str]:
    """`ChanVariable` header(s) -> {name: value}, ticket variables only.

    panoramisk gives a str for one line and a list for repeated lines. The
    inherited form (`__TICKET_ID`) is normalised to the plain name.
    """
    if not raw:
        return {}
    out: dict[str, str] = {}
    for item in (raw,) if isinstance(raw, str) else raw:
        name, _, value = item.partition("=")
        if not value:  # unset variables arrive as "NAME=" on every event
            continue
        if name in TICKET_VARS:
            out[name] = value
        elif name[:1] == "_" and (name := name.lstrip("_")) in TICKET_VARS:
            out[name] = value
    return out


def ticket_vars_by_prefix(event: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """Every `<Prefix>ChanVariable` header -> {prefix: ticket vars}.

    The unprefixed channel is prefix "". Transfer events use Transferer,
    Transferee, OrigTransferer, SecondTransferer, TransferTarget; dials use Dest.
    """
    found: dict[str, dict[str, str]] = {}
    for key, raw in event.items():
        if key.endswith("ChanVariable"):
            parsed = parse_chan_variables(raw)  # type: ignore[arg-type]
            if parsed:
                found[key[: -len("ChanVariable")]] = parsed
    return found
