"""SIPp's message log (-trace_msg) read back: SIP messages, then one record per dialog.

Pure: text in, dataclasses out. The driver reads the file (see sipp_process.read_messages).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class SipMessage:
    """One SIP message as SIPp logged it (-trace_msg)."""

    at: datetime
    direction: Literal["sent", "received"]
    first_line: str
    headers: dict[str, str]
    body: str

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0")

    @property
    def status(self) -> int | None:
        return int(self.first_line.split()[1]) if self.is_response else None

    @property
    def method(self) -> str:
        """The request method, or for a response the method its CSeq names."""
        if self.is_response:
            return self.header("CSeq").split()[-1] if self.header("CSeq") else ""
        return self.first_line.split()[0]

    @property
    def call_id(self) -> str:
        return self.header("Call-ID")

    def header(self, name: str) -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""


_ENTRY_SEPARATOR = re.compile(r"^-{47} (\d{4}-\d{2}-\d{2}[ \t]\d{2}:\d{2}:\d{2}\.\d+)$", re.M)
_ENTRY_KIND = re.compile(r"^\w+ message (sent|received)")


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse a SIPp `-trace_msg` log. Unknown entries (e.g. notices) are skipped."""
    parts = _ENTRY_SEPARATOR.split(text)
    messages = []
    for stamp, entry in zip(parts[1::2], parts[2::2], strict=True):
        lines = entry.strip("\n").split("\n")
        kind = _ENTRY_KIND.match(lines[0]) if lines else None
        if kind is None:
            continue
        message = _parse_sip(lines[1:])
        if message is None:
            continue
        first_line, headers, body = message
        at = datetime.strptime(stamp.replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f")
        messages.append(SipMessage(at, kind.group(1), first_line, headers, body))  # type: ignore[arg-type]
    return messages


def _parse_sip(lines: list[str]) -> tuple[str, dict[str, str], str] | None:
    lines = [line.rstrip("\r") for line in itertools.dropwhile(lambda s: not s.strip(), lines)]
    if not lines:
        return None
    headers: dict[str, str] = {}
    index = 1
    while index < len(lines) and lines[index].strip():
        name, _, value = lines[index].partition(":")
        name, value = name.strip(), value.strip()
        # Repeated headers (Via, Record-Route) are joined, as SIP allows.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
        index += 1
    return lines[0].strip(), headers, "\n".join(lines[index + 1 :]).strip()


@dataclass(frozen=True)
class CallRecord:
    """One dialog seen in a message log, from our side's point of view."""

    call_id: str
    invite: SipMessage
    final_status: int | None
    invite_to_ringing_ms: float | None
    invite_to_answer_ms: float | None
    duration_s: float | None  # answer -> BYE
    hangup_by: Literal["us", "far"] | None
    messages: tuple[SipMessage, ...]

    @property
    def answered(self) -> bool:
        return self.final_status is not None and 200 <= self.final_status < 300

    def requests(self, method: str, direction: Literal["sent", "received"]) -> list[SipMessage]:
        return [
            m
            for m in self.messages
            if not m.is_response and m.method == method and m.direction == direction
        ]

    def responses_to(self, method: str, direction: Literal["sent", "received"]) -> list[int]:
        return [
            m.status
            for m in self.messages
            if m.is_response and m.method == method and m.direction == direction and m.status
        ]


def summarize_calls(messages: Iterable[SipMessage]) -> list[CallRecord]:
    """Group a log by Call-ID into call records, in order of first INVITE."""
    by_call: dict[str, list[SipMessage]] = {}
    for message in messages:
        by_call.setdefault(message.call_id, []).append(message)
    return [record for msgs in by_call.values() if (record := _call_record(msgs)) is not None]


def _call_record(messages: list[SipMessage]) -> CallRecord | None:
    invite = next((m for m in messages if not m.is_response and m.method == "INVITE"), None)
    if invite is None:
        return None
    # Responses to the initial INVITE travel opposite to it; later re-INVITEs have other CSeqs.
    reply_direction = "received" if invite.direction == "sent" else "sent"
    replies = [
        m
        for m in messages
        if m.is_response
        and m.direction == reply_direction
        and m.header("CSeq") == invite.header("CSeq")
    ]
    ringing = next((m for m in replies if m.status in (180, 183)), None)
    final = next((m for m in replies if m.status and m.status >= 200), None)
    bye = next((m for m in messages if not m.is_response and m.method == "BYE"), None)
    answered = final is not None and final.status is not None and final.status < 300

    def ms_since_invite(message: SipMessage | None) -> float | None:
        return None if message is None else (message.at - invite.at).total_seconds() * 1000

    hangup_by: Literal["us", "far"] | None = None
    if bye is not None:
        hangup_by = "us" if bye.direction == "sent" else "far"
    return CallRecord(
        call_id=invite.call_id,
        invite=invite,
        final_status=final.status if final else None,
        invite_to_ringing_ms=ms_since_invite(ringing),
        invite_to_answer_ms=ms_since_invite(final) if answered else None,
        duration_s=(bye.at - final.at).total_seconds() if answered and bye and final else None,
        hangup_by=hangup_by,
        messages=tuple(messages),
    )
