"""Async driver for the lab's SIPp peers: citizen caller (UAC), agents and desks (UAS).

Scenario templates live in `sip-sim/scenarios/`; each run renders them into its
own work dir (options become XML), runs `sipp` as a child process on its own
SIP and media ports, and reads SIPp's message log back into `SipMessage`s to
report what happened: final status, timings, captured INVITE headers.

    agent = await SippAgent.start(port=16101, ring_delay_ms=500, keys=[(2000, "*1")])
    res = await citizen_call(number="12345", port=15060, headers={"X-Ticket-Id": "T-1"})
    agent.invites()[0]["X-Ticket-Id"]  # -> "T-1"
    await agent.stop()

See sip-sim/README.md for the scenarios and every option.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import random
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from telephony.lab import topology
from telephony.lab.dtmf_pcap import DTMF_EVENT_CODES, write_press_pcap

SIPP_BINARY = "/usr/bin/sipp"
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "sip-sim" / "scenarios"
SIPP_SHARE = Path("/usr/share/sip-tester")
AUDIO_PCAP = SIPP_SHARE / "g711a.pcap"
PRESS_MS = 220  # one generated RFC 4733 press: 160 ms tone + 3 end packets, 20 ms apart
INFO_DIGIT_GAP_MS = 100  # between the digits of one INFO key sequence such as "*1"
STOP_GRACE_S = 3.0

DtmfMode = Literal["rfc4733", "info"]
KeyPresses = Sequence[tuple[int, str]]  # (ms after answer, digits)


# --------------------------------------------------------------------------- message log


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


# --------------------------------------------------------------------------- rendering


_SAFE_HEADER_NAME = re.compile(r"^X-[A-Za-z0-9-]+$")


def _render(template: str, values: Mapping[str, str]) -> str:
    text = (SCENARIO_DIR / template).read_text()
    for key, value in values.items():  # in order: later values may fill earlier ones
        text = text.replace(f"@@{key}@@", value)
    leftover = re.search(r"@@[A-Z_]+@@", text)
    if leftover:
        raise ValueError(f"template {template} has an unrendered marker {leftover.group()}")
    return text


def _header_lines(headers: Mapping[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        if not _SAFE_HEADER_NAME.match(name):
            raise ValueError(f"only X- headers may be added: {name!r}")
        # '[' would start a SIPp keyword; CR/LF or ']]>' would break the message or the XML;
        # the scenario file is Latin-1, so non-ASCII must arrive already encoded.
        if not value.isascii() or any(bad in value for bad in ("\r", "\n", "[", "]")):
            raise ValueError(f"unsafe header value for {name}: {value!r}")
        lines.append(f"\n      {name}: {value}")
    return "".join(lines)


def _indent(lines: Sequence[str]) -> str:
    """Message lines as they sit in a CDATA block (SIPp strips the indent)."""
    return "\n".join(f"      {line}" if line else "" for line in lines)


def _cdata_send(lines: str, *, attrs: str = "") -> str:
    return f"  <send{attrs}>\n    <![CDATA[\n\n{lines}\n\n    ]]>\n  </send>"


def _pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>' if ms > 0 else ""


def _play(pcap: Path) -> str:
    return f'  <nop>\n    <action>\n      <exec play_pcap_audio="{pcap}"/>\n    </action>\n  </nop>'


def _check_digits(presses: KeyPresses) -> list[tuple[int, str]]:
    ordered = sorted(presses)
    for delay, digits in ordered:
        if delay < 0 or not digits or any(d not in DTMF_EVENT_CODES for d in digits):
            raise ValueError(f"bad key press {(delay, digits)!r}")
    return ordered


def _in_dialog_request(
    method: str,
    dialog: Mapping[str, str],
    *,
    cseq: int,
    body: Sequence[str] = (),
    content_type: str = "",
) -> str:
    """An in-dialog request built from the dialog's URIs, then waiting for its 200."""
    request_uri = dialog["request_uri"]
    lines = [
        f"{method} {request_uri} SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        # A UAC keeps the Record-Route set of the 200 (rrs); a UAS has none to reuse.
        *(["[routes]"] if request_uri == "[next_url]" else []),
        f"From: {dialog['from_']}",
        f"To: {dialog['to']}",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        f"Contact: {dialog['contact']}",
        "Max-Forwards: 70",
        *([f"Content-Type: {content_type}"] if content_type else []),
        "Content-Length: [len]" if body else "Content-Length: 0",
        *(["", *body] if body else []),
    ]
    send = _cdata_send(_indent(lines), attrs=' retrans="500"')
    return send + '\n  <recv response="100" optional="true"/>\n  <recv response="200"/>'


def _wait_for_bye() -> str:
    return "\n".join(
        [
            "  <!-- Stay until the far end hangs up; re-INVITE/UPDATE go to _unexp.main. -->",
            '  <recv request="BYE"/>',
            _cdata_send(_ok_lines()),
        ]
    )


@dataclass
class _CallPlan:
    """Turns timed presses and the hang-up into scenario steps, tracking elapsed ms."""

    mode: DtmfMode
    workdir: Path
    dialog: dict[str, str]  # request_uri, from_, to, contact for our in-dialog requests
    cseq: int = 2
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    elapsed_ms: int = 0
    steps: list[str] = field(default_factory=list)
    seq: int = field(default_factory=lambda: random.getrandbits(15))
    timestamp_base: int = field(default_factory=lambda: random.getrandbits(30))
    press_count: int = 0

    def wait_until(self, at_ms: int) -> None:
        self.steps.append(_pause(at_ms - self.elapsed_ms))
        self.elapsed_ms = max(self.elapsed_ms, at_ms)

    def press(self, at_ms: int, digits: str) -> None:
        self.wait_until(at_ms)
        for digit in digits:
            if self.mode == "info":
                self._request(
                    "INFO",
                    body=[f"Signal={digit}", "Duration=160"],
                    content_type="application/dtmf-relay",
                )
                self.steps.append(_pause(INFO_DIGIT_GAP_MS))
                self.elapsed_ms += INFO_DIGIT_GAP_MS
            else:
                self._press_rfc4733(digit)

    def hang_up_at(self, at_ms: int) -> None:
        self.wait_until(at_ms)
        self._request("BYE")

    def _request(self, method: str, **kwargs) -> None:
        self.steps.append(_in_dialog_request(method, self.dialog, cseq=self.cseq, **kwargs))
        self.cseq += 1

    def _press_rfc4733(self, digit: str) -> None:
        # A distinct timestamp per press, so Asterisk never mistakes it for a repeat.
        self.press_count += 1
        pcap = self.workdir / f"press{self.press_count:02d}.pcap"
        timestamp = self.timestamp_base + 8 * self.elapsed_ms
        self.seq = write_press_pcap(pcap, digit, seq=self.seq, timestamp=timestamp, ssrc=self.ssrc)
        # Wait for the pcap to finish: a new play_pcap_audio cancels the running one.
        self.steps += [_play(pcap), _pause(PRESS_MS)]
        self.elapsed_ms += PRESS_MS

    def render(self) -> str:
        return "\n".join(step for step in self.steps if step)


def render_citizen(
    workdir: Path,
    *,
    number: str,
    caller: str,
    headers: Mapping[str, str],
    dtmf: KeyPresses,
    dtmf_mode: DtmfMode,
    talk_s: float | None,
    play_audio: bool,
) -> Path:
    """Render the citizen UAC scenario into workdir; returns the XML path."""
    for label, value in (("number", number), ("caller", caller)):
        if not re.fullmatch(r"[0-9A-Za-z*#+._-]+", value):
            raise ValueError(f"bad {label}: {value!r}")
    us = f"<sip:{caller}@[local_ip]:[local_port]>"
    plan = _CallPlan(
        dtmf_mode,
        workdir,
        dialog={
            "request_uri": "[next_url]",
            "from_": f"{us};tag=[pid]SIPpTag00[call_number]",
            "to": f"<sip:{number}@[remote_ip]:[remote_port]>[peer_tag_param]",
            "contact": us,
        },
    )
    if play_audio:
        plan.steps.append(_play(AUDIO_PCAP))
    for at_ms, digits in _check_digits(dtmf):
        plan.press(at_ms, digits)
    if talk_s is None:
        ending = _wait_for_bye()
    else:
        plan.hang_up_at(round(talk_s * 1000))
        ending = ""
    xml = _render(
        "citizen_uac.xml",
        {
            "HEADERS": _header_lines(headers),
            "IN_CALL": plan.render(),
            "ENDING": ending,
            "UNEXPECTED": _render("in_dialog_handler.xml", {"SELF_USER": caller}),
            "NUMBER": number,
            "CALLER": caller,
            "SELF_USER": caller,
        },
    )
    path = workdir / "citizen.xml"
    path.write_text(xml)
    return path


def _ok_lines() -> str:
    """A bodiless 200 OK to the request just received."""
    lines = ["SIP/2.0 200 OK", "[last_Via:]", "[last_From:]", "[last_To:]", "[last_Call-ID:]"]
    return "\n".join(f"      {line}" for line in [*lines, "[last_CSeq:]", "Content-Length: 0"])


def _uas_response(status_line: str, *, sdp: bool = False, cseq: str = "[last_CSeq:]") -> str:
    lines = [
        status_line,
        "[last_Via:]",
        "[last_From:]",
        "[last_To:];tag=[pid]SIPpTag01[call_number]",
        "[last_Call-ID:]",
        cseq,
        "Contact: <sip:@@SELF_USER@@@[local_ip]:[local_port]>",
    ]
    if sdp:
        lines += [
            "Content-Type: application/sdp",
            "Content-Length: [len]",
            "",
            "v=0",
            "o=@@SELF_USER@@ 53655765 2353687637 IN IP[local_ip_type] [local_ip]",
            "s=-",
            "c=IN IP[media_ip_type] [media_ip]",
            "t=0 0",
            "m=audio [media_port] RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    else:
        lines.append("Content-Length: 0")
    return _indent(lines)


def render_agent(
    workdir: Path,
    *,
    user: str,
    ring_delay_ms: int,
    reject_code: int | None,
    ring_forever: bool,
    keys: KeyPresses,
    key_mode: DtmfMode,
    hangup_after_ms: int | None = None,
) -> Path:
    """Render the auto-answer UAS scenario (agent or desk) into workdir."""
    if not re.fullmatch(r"[0-9A-Za-z._-]+", user):
        raise ValueError(f"bad user: {user!r}")
    captures: list[str] = []
    if reject_code is not None:
        if not 400 <= reject_code <= 699:
            raise ValueError(f"reject_code must be a 4xx-6xx status: {reject_code}")
        answer = "\n".join(
            [
                _cdata_send(_uas_response(f"SIP/2.0 {reject_code} {_reason(reject_code)}")),
                '  <recv request="ACK" next="done"/>',
            ]
        )
    elif ring_forever:
        # The INVITE's CSeq is kept because the 487 follows the CANCEL, whose CSeq differs.
        captures.append(
            '<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>'
        )
        answer = "\n".join(
            [
                _cdata_send(_uas_response("SIP/2.0 180 Ringing")),
                "  <!-- Never answer: wait for the caller to give up. -->",
                '  <recv request="CANCEL"/>',
                _cdata_send(_ok_lines()),
                _cdata_send(
                    _uas_response(
                        "SIP/2.0 487 Request Terminated", cseq="CSeq: [$invite_cseq] INVITE"
                    )
                ),
                '  <recv request="ACK" next="done"/>',
            ]
        )
    else:
        answer = "\n".join(
            [
                _cdata_send(_uas_response("SIP/2.0 180 Ringing")),
                _pause(ring_delay_ms),
                _cdata_send(_uas_response("SIP/2.0 200 OK", sdp=True), attrs=' retrans="500"'),
                '  <recv request="ACK" crlf="true"/>',
            ]
        )
    ordered_keys = _check_digits(keys)
    if (ordered_keys and key_mode == "info") or hangup_after_ms is not None:
        # An in-dialog request from the UAS swaps the INVITE's From/To and targets its Contact.
        captures += [
            '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>',
            '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>',
            '<ereg regexp="sip:[^&gt;;]*" search_in="hdr" header="Contact:"'
            ' assign_to="remote_contact"/>',
        ]
    plan = _CallPlan(
        key_mode,
        workdir,
        cseq=101,
        dialog={
            "request_uri": "[$remote_contact]",
            "from_": "[$local_to];tag=[pid]SIPpTag01[call_number]",
            "to": "[$remote_from]",
            "contact": f"<sip:{user}@[local_ip]:[local_port]>",
        },
    )
    for at_ms, digits in ordered_keys:
        plan.press(at_ms, digits)
    if hangup_after_ms is None:
        ending = _wait_for_bye()
    else:
        plan.hang_up_at(hangup_after_ms)
        ending = ""
    xml = _render(
        "agent_uas.xml",
        {
            "CAPTURE": "\n".join(f"      {c}" for c in captures),
            "ANSWER": answer,
            "IN_CALL": plan.render(),
            "ENDING": ending,
            "UNEXPECTED": _render("in_dialog_handler.xml", {"SELF_USER": user}),
            "SELF_USER": user,  # last: the generated parts above contain it too
        },
    )
    path = workdir / "agent.xml"
    path.write_text(xml)
    return path


def _reason(code: int) -> str:
    return {
        404: "Not Found",
        480: "Temporarily Unavailable",
        486: "Busy Here",
        503: "Service Unavailable",
        603: "Decline",
    }.get(code, "Rejected")


# --------------------------------------------------------------------------- ports


def _udp_port_free(port: int, host: str = topology.HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def pick_sip_port(port_range: tuple[int, int] = topology.CITIZEN_PORT_RANGE) -> int:
    """A free UDP port from the range, tried in random order (parallel runs rarely collide)."""
    ports = list(range(port_range[0], port_range[1] + 1))
    random.shuffle(ports)
    for port in ports:
        if _udp_port_free(port):
            return port
    raise RuntimeError(f"no free UDP port in {port_range}")


def pick_media_port(port_range: tuple[int, int] = topology.SIPP_MEDIA_PORT_RANGE) -> int:
    """The base of a free block of 10 media ports (SIPp uses base..base+3)."""
    blocks = list(range(port_range[0], port_range[1] - 9, 10))
    random.shuffle(blocks)
    for base in blocks:
        if all(_udp_port_free(base + offset) for offset in range(4)):
            return base
    raise RuntimeError(f"no free media block in {port_range}")


def udp_port_bound(port: int) -> bool:
    """True if some socket has `port` bound (read from /proc, without touching it)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        # Row: "sl local_address rem_address ..."; local_address is HEXIP:HEXPORT.
        if any(int(row.split()[1].rsplit(":", 1)[1], 16) == port for row in rows if row.strip()):
            return True
    return False


# --------------------------------------------------------------------------- processes


def sipp_argv(scenario: Path, args: Sequence[str]) -> list[str]:
    """The full sipp command line; its logs go next to the scenario (see read_messages)."""
    workdir = scenario.parent
    argv = [
        SIPP_BINARY,
        *args,
        "-sf",
        str(scenario),
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(workdir / "messages.log"),
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
    ]
    (workdir / "argv.txt").write_text(" ".join(argv) + "\n")
    return argv


def read_messages(workdir: Path) -> list[SipMessage]:
    """The SIP messages a sipp run (ours or detached) has logged in workdir so far."""
    try:
        return parse_message_log((workdir / "messages.log").read_text(errors="replace"))
    except FileNotFoundError:
        return []


def uas_argv(
    workdir: Path,
    *,
    port: int,
    user: str,
    ring_delay_ms: int = 0,
    reject_code: int | None = None,
    ring_forever: bool = False,
    keys: KeyPresses = (),
    mode: DtmfMode = "info",
    hangup_after_ms: int | None = None,
    max_calls: int | None = None,
    lifetime_s: float | None = 900.0,
    media_port: int | None = None,
) -> list[str]:
    """Render an agent/desk scenario into workdir and return its sipp argv.

    SippAgent/SippDesk run it as a child of this process. The lab, whose desks must
    outlive `hotline lab up`, can run the same argv detached and read the log back
    with read_messages(workdir). lifetime_s=None: no global timeout.
    """
    scenario = render_agent(
        workdir,
        user=user,
        ring_delay_ms=ring_delay_ms,
        reject_code=reject_code,
        ring_forever=ring_forever,
        keys=keys,
        key_mode=mode,
        hangup_after_ms=hangup_after_ms,
    )
    args = [*_bind_args(port, media_port or pick_media_port()), "-aa"]
    if lifetime_s is not None:
        args += ["-timeout", f"{max(1, round(lifetime_s))}s"]  # never outlive a test run
    if max_calls is not None:
        args += ["-m", str(max_calls)]
    return sipp_argv(scenario, args)


def desk_argv(
    workdir: Path, *, number: str, port: int | None = None, lifetime_s: float | None = None
) -> list[str]:
    """The argv of an emergency desk UAS (auto-answer, until BYE, unlimited calls)."""
    port = port or topology.DESKS[number].sip_port
    return uas_argv(workdir, port=port, user=f"desk{number}", lifetime_s=lifetime_s)


class SippProcess:
    """One sipp child with its work dir, message log and error log."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, keep_workdir: bool):
        self.proc = proc
        self.workdir = workdir
        self.keep_workdir = keep_workdir

    @classmethod
    async def spawn(cls, argv: Sequence[str], workdir: Path, *, keep_workdir: bool) -> SippProcess:
        with open(workdir / "stderr.log", "wb") as stderr:  # noqa: ASYNC230 - before the child runs
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,  # SIPp's live screen; the logs hold the facts
                stderr=stderr,
                cwd=workdir,
                preexec_fn=_die_with_parent,
            )
        return cls(proc, workdir, keep_workdir)

    def messages(self) -> list[SipMessage]:
        return read_messages(self.workdir)

    def errors(self) -> str:
        """SIPp's error log plus stderr, without its progress chatter."""
        lines = []
        for name in ("stderr.log", "errors.log"):
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace")
                lines += [line for line in text.splitlines() if not _is_chatter(line)]
        return "\n".join(lines).strip()

    async def wait(self, timeout_s: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            return await self.terminate()

    async def terminate(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; always reaps the child."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def cleanup(self) -> None:
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


_CHATTER = re.compile(r"^(In pcap |max pkt length|base port|Resolving remote host|\s*$)")


def _is_chatter(line: str) -> bool:
    return bool(_CHATTER.match(line))


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the Python parent dies (no orphan sipp)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"sipp-{prefix}-"))


# --------------------------------------------------------------------------- citizen


@dataclass(frozen=True)
class CitizenResult:
    """What one citizen call did. `ok` means SIPp passed and the call was answered."""

    ok: bool
    exit_code: int
    sip_status: int | None
    call_id: str | None
    invite_to_ringing_ms: float | None
    invite_to_answer_ms: float | None
    call_duration_s: float | None
    hangup_by: Literal["us", "far"] | None
    errors: str
    messages: tuple[SipMessage, ...]
    workdir: Path

    def received(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "received" and m.method == method]

    def sent(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "sent" and m.method == method]


async def citizen_call(
    *,
    number: str,
    port: int,
    host: str = topology.HOST,
    caller: str = "13800000001",
    headers: Mapping[str, str] | None = None,
    dtmf: KeyPresses = (),
    dtmf_mode: DtmfMode = "rfc4733",
    talk_s: float | None = 3.0,
    play_audio: bool = False,
    timeout_s: float = 30.0,
    local_port: int | None = None,
    keep_workdir: bool = False,
) -> CitizenResult:
    """Place one call to sip:<number>@host:port and wait for it to end.

    dtmf: (ms after answer, digits) presses. talk_s: hang up that many seconds after
    answer; None stays until the far end sends BYE. The call never outlives timeout_s.
    """
    workdir = _workdir("citizen")
    scenario = render_citizen(
        workdir,
        number=number,
        caller=caller,
        headers=headers or {},
        dtmf=dtmf,
        dtmf_mode=dtmf_mode,
        talk_s=talk_s,
        play_audio=play_audio,
    )
    timeout = max(2, round(timeout_s))
    # A receive times out a little before the whole run does, so SIPp aborts the call
    # itself: CANCEL while ringing, BYE once answered. The global timeout is a backstop.
    recv_timeout_ms = timeout * 1000 - 1500
    args = [
        f"{host}:{port}",
        *_bind_args(local_port or pick_sip_port(), pick_media_port()),
        "-m",
        "1",
        "-aa",
        "-timeout",
        f"{timeout}s",
        "-timeout_error",
        "-recv_timeout",
        str(recv_timeout_ms),
    ]
    sipp = await SippProcess.spawn(sipp_argv(scenario, args), workdir, keep_workdir=keep_workdir)
    exit_code = await sipp.wait(timeout + STOP_GRACE_S + 2)
    messages = sipp.messages()
    calls = summarize_calls(messages)
    call = calls[0] if calls else None
    result = CitizenResult(
        ok=exit_code == 0 and call is not None and call.answered,
        exit_code=exit_code,
        sip_status=call.final_status if call else None,
        call_id=call.call_id if call else None,
        invite_to_ringing_ms=call.invite_to_ringing_ms if call else None,
        invite_to_answer_ms=call.invite_to_answer_ms if call else None,
        call_duration_s=call.duration_s if call else None,
        hangup_by=call.hangup_by if call else None,
        errors=sipp.errors(),
        messages=tuple(messages),
        workdir=workdir,
    )
    sipp.cleanup()
    return result


def _bind_args(sip_port: int, media_port: int, host: str = topology.HOST) -> list[str]:
    return ["-i", host, "-p", str(sip_port), "-mi", host, "-mp", str(media_port)]


# --------------------------------------------------------------------------- agents and desks


@dataclass(frozen=True)
class UasResult:
    """What a stopped agent/desk saw: every call, SIPp's exit code and errors."""

    exit_code: int
    calls: tuple[CallRecord, ...]
    errors: str

    @property
    def answered(self) -> int:
        return sum(call.answered for call in self.calls)


class SippUas:
    """A long-running SIPp UAS (agent or desk) bound to one port; serves many calls."""

    def __init__(self, sipp: SippProcess, port: int):
        self._sipp = sipp
        self.port = port

    @classmethod
    async def _launch(
        cls,
        *,
        port: int,
        user: str,
        keep_workdir: bool = False,
        ready_timeout_s: float = 5.0,
        **behaviour,
    ):
        if not _udp_port_free(port):
            raise RuntimeError(f"UDP port {port} is already in use")
        workdir = _workdir(user)
        argv = uas_argv(workdir, port=port, user=user, **behaviour)
        sipp = await SippProcess.spawn(argv, workdir, keep_workdir=keep_workdir)
        uas = cls(sipp, port)
        await uas._wait_ready(ready_timeout_s)
        return uas

    async def _wait_ready(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not udp_port_bound(self.port):
            if self._sipp.proc.returncode is not None or loop.time() > deadline:
                await self._sipp.terminate()
                raise RuntimeError(
                    f"sipp UAS on port {self.port} did not start: {self._sipp.errors()}"
                )
            await asyncio.sleep(0.05)

    @property
    def workdir(self) -> Path:
        return self._sipp.workdir

    @property
    def pid(self) -> int:
        return self._sipp.proc.pid

    @property
    def running(self) -> bool:
        return self._sipp.proc.returncode is None

    def calls(self) -> list[CallRecord]:
        return summarize_calls(self._sipp.messages())

    def invites(self) -> list[dict[str, str]]:
        """Headers of each call's first INVITE received so far (Call-ID, X-Ticket-*, ...)."""
        return [dict(call.invite.headers) for call in self.calls()]

    async def wait_for_calls(
        self, count: int, *, ended: bool = False, timeout_s: float = 10.0
    ) -> list[CallRecord]:
        """Poll the log until `count` calls arrived (or ended, with a BYE or final non-2xx)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            calls = self.calls()
            done = [c for c in calls if not ended or c.hangup_by or (c.final_status or 0) >= 300]
            if len(done) >= count or loop.time() > deadline:
                return calls
            await asyncio.sleep(0.1)

    async def stop(self) -> UasResult:
        exit_code = await self._sipp.terminate()
        result = UasResult(exit_code, tuple(self.calls()), self._sipp.errors())
        self._sipp.cleanup()
        return result

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.running:
            await self.stop()


class SippAgent(SippUas):
    """An auto-answer agent endpoint (e.g. agent12345-1 on 16101)."""

    @classmethod
    async def start(
        cls,
        *,
        port: int,
        user: str = "agent",
        ring_delay_ms: int = 0,
        reject_code: int | None = None,
        ring_forever: bool = False,
        keys: KeyPresses = (),
        mode: DtmfMode = "info",
        hangup_after_ms: int | None = None,
        max_calls: int | None = None,
        lifetime_s: float = 900.0,
        keep_workdir: bool = False,
    ) -> SippAgent:
        """keys: (ms after answer, digits) pressed in every answered call, as SIP INFO
        (mode="info", Signal=<digit>) or RFC 4733 RTP (mode="rfc4733").
        hangup_after_ms: send BYE that long after answer; None waits for the caller's BYE."""
        return await cls._launch(
            port=port,
            user=user,
            ring_delay_ms=ring_delay_ms,
            reject_code=reject_code,
            ring_forever=ring_forever,
            keys=keys,
            mode=mode,
            hangup_after_ms=hangup_after_ms,
            max_calls=max_calls,
            lifetime_s=lifetime_s,
            keep_workdir=keep_workdir,
        )


class SippDesk(SippUas):
    """An emergency desk (119/120/122): answers at once, stays until BYE, any number of calls."""

    @classmethod
    async def start(
        cls,
        *,
        port: int,
        number: str = "119",
        lifetime_s: float = 900.0,
        keep_workdir: bool = False,
    ) -> SippDesk:
        return await cls._launch(
            port=port, user=f"desk{number}", lifetime_s=lifetime_s, keep_workdir=keep_workdir
        )


# --------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """`hotline sipp call|agent|desk`: run the lab's SIP peers by hand."""
    sipp = subparsers.add_parser("sipp", help="run a SIPp citizen, agent or desk by hand")
    commands = sipp.add_subparsers(dest="sipp_command", required=True)

    call = commands.add_parser("call", help="place one citizen call and print the result")
    call.add_argument("--number", required=True, help="dialled number, e.g. 12345")
    call.add_argument("--port", type=int, required=True, help="node SIP port, e.g. 15060")
    call.add_argument("--caller", default="13800000001")
    call.add_argument("--header", action="append", default=[], metavar="X-NAME=VALUE")
    call.add_argument("--dtmf", action="append", default=[], metavar="MS:DIGITS")
    call.add_argument("--dtmf-mode", choices=("rfc4733", "info"), default="rfc4733")
    call.add_argument("--talk", type=float, default=3.0, help="seconds after answer, then BYE")
    call.add_argument("--until-bye", action="store_true", help="stay until the far end hangs up")
    call.add_argument("--audio", action="store_true", help="play g711a.pcap after answer")
    call.add_argument("--timeout", type=float, default=30.0)
    call.set_defaults(func=_cli_call)

    agent = commands.add_parser("agent", help="run an auto-answer agent until Ctrl-C")
    agent.add_argument("--port", type=int, required=True, help="e.g. 16101")
    agent.add_argument("--user", default="agent")
    agent.add_argument("--ring-delay", type=int, default=0, metavar="MS")
    agent.add_argument("--reject", type=int, metavar="CODE", help="e.g. 486")
    agent.add_argument("--ring-forever", action="store_true")
    agent.add_argument("--key", action="append", default=[], metavar="MS:DIGITS")
    agent.add_argument("--key-mode", choices=("info", "rfc4733"), default="info")
    agent.add_argument("--hangup-after", type=int, metavar="MS")
    agent.add_argument("--lifetime", type=float, default=900.0, metavar="S")
    agent.set_defaults(func=_cli_agent)

    desk = commands.add_parser("desk", help="run an emergency desk UAS until Ctrl-C")
    desk.add_argument("--number", choices=sorted(topology.DESKS), default="119")
    desk.add_argument("--port", type=int, help="default: the desk's lab port")
    desk.add_argument("--lifetime", type=float, default=900.0, metavar="S")
    desk.set_defaults(func=_cli_desk)


def parse_presses(values: Sequence[str]) -> list[tuple[int, str]]:
    """'1500:0' -> (1500, '0'); the CLI form of key presses."""
    presses = []
    for value in values:
        delay, sep, digits = value.partition(":")
        if not sep or not delay.isdigit():
            raise ValueError(f"expected MS:DIGITS, got {value!r}")
        presses.append((int(delay), digits))
    return _check_digits(presses)


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep:
            raise ValueError(f"expected X-NAME=VALUE, got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def _cli_call(args: argparse.Namespace) -> int:
    result = asyncio.run(
        citizen_call(
            number=args.number,
            port=args.port,
            caller=args.caller,
            headers=parse_headers(args.header),
            dtmf=parse_presses(args.dtmf),
            dtmf_mode=args.dtmf_mode,
            talk_s=None if args.until_bye else args.talk,
            play_audio=args.audio,
            timeout_s=args.timeout,
        )
    )
    summary = {
        "ok": result.ok,
        "sip_status": result.sip_status,
        "call_id": result.call_id,
        "invite_to_ringing_ms": result.invite_to_ringing_ms,
        "invite_to_answer_ms": result.invite_to_answer_ms,
        "call_duration_s": result.call_duration_s,
        "hangup_by": result.hangup_by,
        "exit_code": result.exit_code,
        "errors": result.errors,
    }
    print(json.dumps(summary, indent=2))
    return 0 if result.ok else 1


def _cli_agent(args: argparse.Namespace) -> int:
    return asyncio.run(
        _serve_until_stopped(
            SippAgent.start(
                port=args.port,
                user=args.user,
                ring_delay_ms=args.ring_delay,
                reject_code=args.reject,
                ring_forever=args.ring_forever,
                keys=parse_presses(args.key),
                mode=args.key_mode,
                hangup_after_ms=args.hangup_after,
                lifetime_s=args.lifetime,
            )
        )
    )


def _cli_desk(args: argparse.Namespace) -> int:
    port = args.port or topology.DESKS[args.number].sip_port
    return asyncio.run(
        _serve_until_stopped(
            SippDesk.start(port=port, number=args.number, lifetime_s=args.lifetime)
        )
    )


async def _serve_until_stopped(starting: Awaitable[SippUas]) -> int:
    """Run a UAS, print each INVITE as it arrives, stop on SIGINT/SIGTERM or its exit."""
    uas = await starting
    print(f"listening on {topology.HOST}:{uas.port} (work dir {uas.workdir})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    shown = 0
    while not stop.is_set() and uas.running:
        invites = uas.invites()
        for headers in invites[shown:]:
            print(json.dumps(headers), flush=True)
        shown = len(invites)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    result = await uas.stop()
    print(f"calls: {len(result.calls)}, answered: {result.answered}, sipp exit {result.exit_code}")
    if result.errors:
        print(result.errors)
    return 0
