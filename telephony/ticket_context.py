"""Ticket context that travels with a call: channel variables and SIP headers.

Every value that reaches AMI, the dialplan or a SIP header passes through here.
Rules: no CR/LF or other control characters, bounded length, and free text
(the summary) is percent-encoded UTF-8 so commas, pipes, quotes and semicolons
cannot break an AMI line, a dialplan argument list or a header.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import asdict, dataclass

# name -> (channel variable, SIP header, max length after encoding)
FIELDS: dict[str, tuple[str, str, int]] = {
    "ticket_id": ("TICKET_ID", "X-Ticket-Id", 40),
    "origin": ("TICKET_ORIGIN", "X-Ticket-Origin", 8),
    "category": ("TICKET_CATEGORY", "X-Ticket-Category", 16),
    "callback": ("TICKET_CALLBACK", "X-Ticket-Callback", 24),
    "division": ("TICKET_DIVISION", "X-Ticket-Division", 12),
    "urgency": ("TICKET_URGENCY", "X-Ticket-Urgency", 10),
    "summary": ("TICKET_SUMMARY", "X-Ticket-Summary", 1100),
}
CHANNEL_VARS = tuple(v[0] for v in FIELDS.values())
SIP_HEADERS = tuple(v[1] for v in FIELDS.values())

SUMMARY_MAX_CHARS = 120  # characters of free text kept before encoding
SUMMARY_MAX_ENCODED = 1100  # bytes on the wire: 120 CJK characters (9 bytes each) fit
URGENCY_LEVELS = ("normal", "urgent", "critical")
PLATFORMS = ("12345", "110", "119", "120", "122")

# Structured fields: a strict alphabet, so nothing needs escaping.
_PATTERNS: dict[str, re.Pattern[str]] = {
    "ticket_id": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"),
    "origin": re.compile(r"^(12345|110|119|120|122)$"),
    "category": re.compile(r"^[A-Za-z0-9._-]{1,16}$"),
    "callback": re.compile(r"^\+?[0-9]{3,20}$"),
    "division": re.compile(r"^[0-9]{6}([0-9]{6})?$"),
    "urgency": re.compile(r"^(normal|urgent|critical)$"),
}
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


class ContextError(ValueError):
    """A ticket context value was rejected; `field` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def encode_summary(text: str) -> str:
    """Free text -> a header/AMI/dialplan-safe token (percent-encoded UTF-8).

    Control characters become spaces; the text is cut to SUMMARY_MAX_CHARS
    characters and the token to SUMMARY_MAX_ENCODED bytes.
    """
    clean = _CTRL.sub(" ", text).strip()[:SUMMARY_MAX_CHARS]
    token = urllib.parse.quote(clean, safe="")
    while len(token) > SUMMARY_MAX_ENCODED:  # only 4-byte characters get here
        clean = clean[:-1]
        token = urllib.parse.quote(clean, safe="")
    return token


def decode_summary(token: str) -> str:
    return urllib.parse.unquote(token, errors="replace")


@dataclass(frozen=True)
class TicketContext:
    ticket_id: str
    origin: str
    category: str = ""
    callback: str = ""
    division: str = ""
    urgency: str = "normal"
    summary: str = ""  # plain text; encoded only on the way out

    def __post_init__(self) -> None:
        for name, pattern in _PATTERNS.items():
            value = getattr(self, name)
            if name in ("ticket_id", "origin") or value:
                if not isinstance(value, str) or not pattern.match(value):
                    raise ContextError(name, f"invalid value {value!r:.60}")
        if not isinstance(self.summary, str):
            raise ContextError("summary", "must be text")

    def wire_values(self) -> dict[str, str]:
        """field name -> the safe wire form (summary encoded), empty fields dropped."""
        out = {}
        for name, value in asdict(self).items():
            if not value:
                continue
            out[name] = encode_summary(value) if name == "summary" else value
        return out

    def channel_vars(self, inherit: bool = True) -> dict[str, str]:
        """Variables to set on a channel; `__` prefix makes every later leg inherit them."""
        prefix = "__" if inherit else ""
        return {prefix + FIELDS[k][0]: v for k, v in self.wire_values().items()}

    def sip_headers(self) -> dict[str, str]:
        return {FIELDS[k][1]: v for k, v in self.wire_values().items()}

    @classmethod
    def from_mapping(cls, values: dict[str, str], *, by: str = "var") -> TicketContext:
        """Rebuild from channel variables (by="var") or SIP headers (by="header").

        Lookup is case-insensitive. Wire values are validated again: a peer's
        headers are input like any other.
        """
        idx = 0 if by == "var" else 1
        lowered = {k.lower(): str(v) for k, v in values.items()}
        kwargs: dict[str, str] = {}
        for name, spec in FIELDS.items():
            raw = lowered.get(str(spec[idx]).lower(), "")
            if raw and len(raw) > spec[2]:
                raise ContextError(name, f"longer than {spec[2]} characters")
            kwargs[name] = decode_summary(raw) if name == "summary" else raw
        return cls(**kwargs)
