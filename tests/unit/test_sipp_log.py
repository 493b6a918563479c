"""SIPp's -trace_msg log read back into messages and per-dialog call records."""

from __future__ import annotations

from telephony.lab.sipp_log import parse_message_log, summarize_calls

_SEPARATOR = "-" * 47


def _log(*entries: tuple[str, str, str]) -> str:
    """A log in SIPp's format from (time of day, 'sent'|'received'|other, message) entries."""
    parts = []
    for clock, direction, message in entries:
        kind = {
            "sent": "UDP message sent (10 bytes):",
            "received": "UDP message received [99] bytes :",
        }.get(direction, direction)
        parts.append(f"{_SEPARATOR} 2026-11-29 {clock}\n{kind}\n\n{message}\n\n")
    return "".join(parts)


def _sip(first_line: str, call_id: str, cseq: str, *headers: str, body: str = "") -> str:
    return "\n".join([first_line, f"Call-ID: {call_id}", f"CSeq: {cseq}", *headers, "", body])


def test_message_log_parser_reads_sipp_format() -> None:
    via = ("Via: SIP/2.0/UDP 127.0.0.1:1;branch=a", "Via: SIP/2.0/UDP 127.0.0.1:2;branch=b")
    invite_text = _sip(
        "INVITE sip:110@127.0.0.1:15061 SIP/2.0",
        "abc",
        "1 INVITE",
        *via,
        "X-Ticket-Id: T-9",
        "Content-Length: 3",
        body="v=0",
    )
    log = _log(
        ("01:49:47.730144", "received", invite_text),
        ("01:49:48.000000", "Some notice from SIPp", "not a SIP message"),
        ("01:49:48.230144", "sent", _sip("SIP/2.0 486 Busy Here", "abc", "1 INVITE")),
    )
    invite, busy = parse_message_log(log)
    assert invite.method == "INVITE" and invite.direction == "received"
    assert invite.header("x-ticket-id") == "T-9"
    assert invite.header("Via").count("branch=") == 2
    assert invite.body == "v=0"
    assert busy.status == 486 and busy.method == "INVITE" and busy.direction == "sent"
    assert (busy.at - invite.at).total_seconds() == 0.5


def test_answered_call_record_has_timings_and_who_hung_up() -> None:
    log = _log(
        ("10:00:00.000", "sent", _sip("INVITE sip:12345@x SIP/2.0", "c1", "1 INVITE")),
        ("10:00:00.010", "received", _sip("SIP/2.0 100 Trying", "c1", "1 INVITE")),
        ("10:00:00.250", "received", _sip("SIP/2.0 180 Ringing", "c1", "1 INVITE")),
        ("10:00:01.500", "received", _sip("SIP/2.0 200 OK", "c1", "1 INVITE")),
        ("10:00:01.510", "sent", _sip("ACK sip:x SIP/2.0", "c1", "1 ACK")),
        # A re-INVITE from the far end: its 200 must not be taken for the answer.
        ("10:00:02.000", "received", _sip("INVITE sip:me SIP/2.0", "c1", "7 INVITE")),
        ("10:00:02.010", "sent", _sip("SIP/2.0 200 OK", "c1", "7 INVITE")),
        ("10:00:04.000", "received", _sip("BYE sip:me SIP/2.0", "c1", "8 BYE")),
        ("10:00:04.010", "sent", _sip("SIP/2.0 200 OK", "c1", "8 BYE")),
    )
    (call,) = summarize_calls(parse_message_log(log))
    assert call.call_id == "c1" and call.answered and call.final_status == 200
    assert call.invite_to_ringing_ms == 250
    assert call.invite_to_answer_ms == 1500
    assert call.duration_s == 2.5
    assert call.hangup_by == "far"
    assert [m.header("CSeq") for m in call.requests("INVITE", "received")] == ["7 INVITE"]
    assert call.responses_to("BYE", "sent") == [200]


def test_rejected_call_has_no_answer_timings_and_calls_keep_their_order() -> None:
    # (direction, first line, Call-ID, CSeq), 100 ms apart; "ping" has no INVITE, so no record.
    entries = [
        ("received", "INVITE sip:a SIP/2.0", "second", "1 INVITE"),
        ("sent", "SIP/2.0 486 Busy Here", "second", "1 INVITE"),
        ("received", "OPTIONS sip:a SIP/2.0", "ping", "1 OPTIONS"),
        ("received", "INVITE sip:a SIP/2.0", "third", "1 INVITE"),
    ]
    log = _log(*((f"10:00:00.{i}00", way, _sip(*msg)) for i, (way, *msg) in enumerate(entries)))
    busy, unanswered = summarize_calls(parse_message_log(log))
    assert busy.call_id == "second" and busy.final_status == 486 and not busy.answered
    assert busy.invite_to_answer_ms is None and busy.duration_s is None and busy.hangup_by is None
    assert unanswered.call_id == "third" and unanswered.final_status is None
