"""Pure builders of SIPp scenario XML: message blocks, pauses, in-dialog requests.

SIPp fills the bracketed keywords ([last_Via:], [call_id], ...) at run time; the
@@MARKERS@@ are filled by the renderer (sipp_scenario) before the run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from telephony.lab.dtmf_pcap import DTMF_EVENT_CODES

DtmfMode = Literal["rfc4733", "info"]
KeyPresses = Sequence[tuple[int, str]]  # (ms after answer, digits)

_SAFE_HEADER_NAME = re.compile(r"^X-[A-Za-z0-9-]+$")


def header_lines(headers: Mapping[str, str]) -> str:
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


def indent(lines: Sequence[str]) -> str:
    """Message lines as they sit in a CDATA block (SIPp strips the indent)."""
    return "\n".join(f"      {line}" if line else "" for line in lines)


def cdata_send(lines: str, *, attrs: str = "") -> str:
    return f"  <send{attrs}>\n    <![CDATA[\n\n{lines}\n\n    ]]>\n  </send>"


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>' if ms > 0 else ""


def play(pcap: Path) -> str:
    return f'  <nop>\n    <action>\n      <exec play_pcap_audio="{pcap}"/>\n    </action>\n  </nop>'


def check_presses(presses: KeyPresses) -> list[tuple[int, str]]:
    ordered = sorted(presses)
    for delay, digits in ordered:
        if delay < 0 or not digits or any(d not in DTMF_EVENT_CODES for d in digits):
            raise ValueError(f"bad key press {(delay, digits)!r}")
    return ordered


def in_dialog_request(
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
    send = cdata_send(indent(lines), attrs=' retrans="500"')
    return send + '\n  <recv response="100" optional="true"/>\n  <recv response="200"/>'


def wait_for_bye() -> str:
    return "\n".join(
        [
            "  <!-- Stay until the far end hangs up; re-INVITE/UPDATE go to _unexp.main. -->",
            '  <recv request="BYE"/>',
            cdata_send(ok_lines()),
        ]
    )


def ok_lines() -> str:
    """A bodiless 200 OK to the request just received."""
    echoed = ["[last_Via:]", "[last_From:]", "[last_To:]", "[last_Call-ID:]", "[last_CSeq:]"]
    return indent(["SIP/2.0 200 OK", *echoed, "Content-Length: 0"])


def uas_response(status_line: str, *, sdp: bool = False, cseq: str = "[last_CSeq:]") -> str:
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
    return indent(lines)


def reason_phrase(code: int) -> str:
    return {
        404: "Not Found",
        480: "Temporarily Unavailable",
        486: "Busy Here",
        503: "Service Unavailable",
        603: "Decline",
    }.get(code, "Rejected")
