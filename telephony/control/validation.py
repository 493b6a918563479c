"""Input validation for everything that can reach an AMI action.

AMI is a line protocol (``Key: value\\r\\n``) and the dialplan splits on commas
and pipes, so a value is either from a strict alphabet or rejected. Free text
never comes here: it travels encoded through telephony.ticket_context.
"""

from __future__ import annotations

import re

from telephony.control.errors import BadInput, Unprocessable

# A channel we may act on: a PJSIP or Local channel, nothing else.
CHANNEL_RE = re.compile(r"^(PJSIP|Local)/[A-Za-z0-9_.@;/+-]{1,80}$")
# Dialplan contexts, extensions, conference names, queue names, endpoints.
TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Channel variable names (optionally with the inheritance prefix).
VARNAME_RE = re.compile(r"^(__|_)?[A-Za-z][A-Za-z0-9_]{0,39}$")
# Variable values that are not ticket context: ids, numbers, names.
VALUE_RE = re.compile(r"^[A-Za-z0-9_.@:/+-]{0,120}$")
# Operation ids and idempotency keys chosen by clients.
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_chars(value: str) -> bool:
    return bool(_CTRL.search(value))


def channel(value: object) -> str:
    if not isinstance(value, str) or not CHANNEL_RE.match(value):
        raise Unprocessable("channel name not allowed", code="invalid_channel",
                            value=_preview(value))
    return value


def token(value: object, what: str = "token") -> str:
    if not isinstance(value, str) or not TOKEN_RE.match(value):
        raise Unprocessable(f"{what} not allowed", code=f"invalid_{what}", value=_preview(value))
    return value


def var_name(value: object) -> str:
    if not isinstance(value, str) or not VARNAME_RE.match(value):
        raise Unprocessable("variable name not allowed", code="invalid_variable",
                            value=_preview(value))
    return value


def var_value(value: object) -> str:
    if not isinstance(value, str) or not VALUE_RE.match(value):
        raise Unprocessable("variable value not allowed", code="invalid_variable",
                            value=_preview(value))
    return value


def client_key(value: object, what: str = "idempotency_key") -> str:
    if not isinstance(value, str) or not KEY_RE.match(value):
        raise BadInput(f"{what} must match {KEY_RE.pattern}", code=f"invalid_{what}")
    return value


def _preview(value: object) -> str:
    """A log/response-safe preview of a rejected value."""
    return repr(value)[:60]
