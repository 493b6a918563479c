"""AMI action builders: pure functions from validated inputs to action dicts.

Every value is checked here (strict alphabets, see validation.py) and once more
by `_sealed`, which refuses any control character or oversized value, so no
caller of this module can put a CR/LF on the AMI wire. Ticket free text only
arrives as TicketContext.channel_vars(), which percent-encodes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from telephony.control import validation
from telephony.control.errors import BadInput
from telephony.control.targets import Target
from telephony.ticket_context import TicketContext

# Dialplan contract (docs/control.md; asterisk-config/extensions.conf.tmpl implements it).
XFER_CONTEXT = "hotline-xfer"  # exten = target number; return-on-failure logic
OUT_CONTEXT = "hotline-out"  # exten = target number; dial only (consults, conference parties)
CONF_CONTEXT = "hotline-conf"  # exten = conference name; runs ConfBridge
RETURN_CONTEXT = "hotline-return"  # back to the transferring agent, else the queue front
ROUTE_CONTEXT = "hotline-route"  # exten queue-front: the owning queue, front, announced
QUEUE_FRONT = "queue-front"

# Variables the dialplan reads.
VAR_OP_ID = "HOTLINE_OP"  # in manager.conf channelvars: events carry it
VAR_CONF_ROLE = "HOTLINE_CONF_ROLE"  # caller | agent | party: picks the ConfBridge profile

MAX_VALUE_LEN = 2048  # an encoded 120-char Chinese summary is ~1080
SPY_OPTIONS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}
ORIGINATE_TIMEOUT_MS = 30000


def _sealed(action: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    """Last line of defence: nothing with a control character or unbounded size leaves."""
    for key, value in action.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                raise BadInput(f"{key} must be text", code="bad_action_value")
            if validation.has_control_chars(item) or len(item) > MAX_VALUE_LEN:
                raise BadInput(f"unsafe value for {key}", code="bad_action_value")
    return action


def variables(values: Mapping[str, str]) -> list[str]:
    """`Variable` lines for Originate: names and values from strict alphabets."""
    return [f"{validation.var_name(k)}={validation.var_value(v)}" for k, v in values.items()]


def ticket_variables(ticket: TicketContext | None) -> list[str]:
    """Ticket context as inherited `Variable` lines (summary already percent-encoded)."""
    if ticket is None:
        return []
    return [f"{validation.var_name(k)}={v}" for k, v in ticket.channel_vars().items()]


def setvar(channel: str, name: str, value: str) -> dict[str, str | list[str]]:
    return _sealed({"Action": "Setvar", "Channel": validation.channel(channel),
                    "Variable": validation.var_name(name), "Value": validation.var_value(value)})


def ticket_setvars(channel: str, ticket: TicketContext) -> list[dict[str, str | list[str]]]:
    """Setvar actions that (re)stamp the ticket context on a channel."""
    validation.channel(channel)
    return [_sealed({"Action": "Setvar", "Channel": channel,
                     "Variable": validation.var_name(k), "Value": v})
            for k, v in ticket.channel_vars().items()]


def blind_transfer(agent_channel: str, target: Target) -> dict[str, str | list[str]]:
    """Moves the agent's bridged peer (the caller) to target@hotline-xfer; the agent leg ends."""
    return _sealed({"Action": "BlindTransfer", "Channel": validation.channel(agent_channel),
                    "Context": XFER_CONTEXT, "Exten": validation.token(target.number, "target")})


def atxfer(agent_channel: str, target: Target) -> dict[str, str | list[str]]:
    """Attended transfer: the caller is held while the agent consults the target.

    The consult dials through hotline-out (no return logic: a failed consult simply
    ends, and Asterisk gives the agent back the caller).
    """
    return _sealed({"Action": "Atxfer", "Channel": validation.channel(agent_channel),
                    "Context": OUT_CONTEXT, "Exten": validation.token(target.number, "target")})


def cancel_atxfer(agent_channel: str) -> dict[str, str | list[str]]:
    return _sealed({"Action": "CancelAtxfer", "Channel": validation.channel(agent_channel)})


def feature_digits(agent_channel: str, digits: str) -> list[dict[str, str | list[str]]]:
    """Emulate the agent pressing a built-in feature code (e.g. atxferswap).

    One PlayDTMF per digit: Asterisk 22's PlayDTMF plays only the first character of
    `Digit`; `Receive: true` queues it as if the phone had sent it, so the bridge's
    feature detection collects the digits into the code.
    """
    if not digits or any(d not in "0123456789*#" for d in digits) or len(digits) > 4:
        raise BadInput("feature digits not allowed", code="bad_action_value")
    channel = validation.channel(agent_channel)
    return [_sealed({"Action": "PlayDTMF", "Channel": channel, "Digit": digit,
                     "Receive": "true"}) for digit in digits]


def redirect(channel: str, context: str, exten: str) -> dict[str, str | list[str]]:
    return _sealed({"Action": "Redirect", "Channel": validation.channel(channel),
                    "Context": validation.token(context, "context"),
                    "Exten": validation.token(exten, "exten"), "Priority": "1"})


def redirect_pair_to_conference(caller_channel: str, agent_channel: str,
                                conference: str) -> dict[str, str | list[str]]:
    """Dual Redirect: caller and agent move together into hotline-conf,<conference>."""
    conf = validation.token(conference, "conference")
    return _sealed({"Action": "Redirect", "Channel": validation.channel(caller_channel),
                    "ExtraChannel": validation.channel(agent_channel),
                    "Context": CONF_CONTEXT, "Exten": conf, "Priority": "1",
                    "ExtraContext": CONF_CONTEXT, "ExtraExten": conf, "ExtraPriority": "1"})


def originate_into_conference(target: Target, conference: str, ticket: TicketContext | None,
                              extra_vars: Mapping[str, str] | None = None,
                              ) -> dict[str, str | list[str]]:
    """Dial `target` via hotline-out and drop the answered leg into the conference."""
    number = validation.token(target.number, "target")
    return _sealed({
        "Action": "Originate",
        "Channel": validation.channel(f"Local/{number}@{OUT_CONTEXT}/n"),
        "Context": CONF_CONTEXT, "Exten": validation.token(conference, "conference"),
        "Priority": "1", "Async": "true", "Timeout": str(ORIGINATE_TIMEOUT_MS),
        "Variable": ticket_variables(ticket) + variables(
            {VAR_CONF_ROLE: "party", **(extra_vars or {})}),
    })


def chanspy(supervisor_endpoint: str, spied_channel: str, mode: str,
            extra_vars: Mapping[str, str] | None = None) -> dict[str, str | list[str]]:
    """Ring the supervisor's phone; on answer it runs ChanSpy on the spied channel."""
    if mode not in SPY_OPTIONS:
        raise BadInput("spy mode must be listen, whisper or barge", code="invalid_spy_mode")
    endpoint = validation.token(supervisor_endpoint, "endpoint")
    spied = validation.channel(spied_channel)
    return _sealed({
        "Action": "Originate", "Channel": validation.channel(f"PJSIP/{endpoint}"),
        "Application": "ChanSpy", "Data": f"{spied},{SPY_OPTIONS[mode]}",
        "Async": "true", "Timeout": str(ORIGINATE_TIMEOUT_MS),
        "Variable": variables(dict(extra_vars or {})),
    })


def hangup(channel: str, cause: int = 16) -> dict[str, str | list[str]]:
    return _sealed({"Action": "Hangup", "Channel": validation.channel(channel),
                    "Cause": str(int(cause))})


def to_wire(action: Mapping[str, str | Iterable[str]]) -> str:
    """The AMI wire form (as panoramisk writes it): one `Key: value` line per value."""
    lines: list[str] = []
    for key, value in action.items():
        items = [value] if isinstance(value, str) else list(value)
        lines.extend(f"{key}: {item}" for item in items)
    return "\r\n".join(lines) + "\r\n\r\n"
