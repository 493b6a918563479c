"""Ticket context on the wire: every value safe for AMI, the dialplan and SIP headers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.ticket_context import (
    FIELDS,
    SUMMARY_MAX_CHARS,
    SUMMARY_MAX_ENCODED,
    ContextError,
    TicketContext,
    decode_summary,
    encode_summary,
)

# What may appear in any wire value: no CR/LF/control chars, no AMI/dialplan/SIP separators.
SAFE_WIRE = re.compile(r"^[A-Za-z0-9%._~+-]*$")

INJECTIONS = [
    "hello\r\nAction: Originate\r\nChannel: Local/1@x\r\n\r\n",
    "a,b|c;d\"e'f`g${SHELL}",
    "群众反映：水管爆裂，漏水严重，地址在天河区\n\n",
    "x" * 10_000,
    "\x00\x07\x1b[31mred",
]


def ctx(**kw: str) -> TicketContext:
    return TicketContext(ticket_id="T-0001", origin="12345", **kw)


@pytest.mark.parametrize("summary", INJECTIONS)
def test_injection_strings_are_encoded_everywhere(summary: str) -> None:
    c = ctx(summary=summary, category="600300", callback="13800000000", urgency="urgent")
    for values in (c.channel_vars(), c.sip_headers(), c.wire_values()):
        for key, value in values.items():
            assert SAFE_WIRE.match(value), (key, value[:80])
            assert len(value) <= FIELDS["summary"][2]
    assert "\r" not in decode_summary(c.wire_values()["summary"])


def test_summary_round_trips_chinese_text_through_headers() -> None:
    c = ctx(summary="小区 井盖丢失, 有人掉下去的风险 | 请尽快" * 6)  # cut to 120 characters
    assert len(decode_summary(c.wire_values()["summary"])) == SUMMARY_MAX_CHARS
    c = TicketContext(**{**c.__dict__, "summary": decode_summary(c.wire_values()["summary"])})
    again = TicketContext.from_mapping(c.sip_headers(), by="header")
    assert again == c


def test_channel_vars_are_inherited_and_rebuild() -> None:
    c = ctx(division="440106", category="500300")
    vars_ = c.channel_vars()
    assert vars_["__TICKET_ID"] == "T-0001"
    assert vars_["__TICKET_DIVISION"] == "440106"
    assert "__TICKET_SUMMARY" not in vars_  # empty fields are not sent
    plain = {k.removeprefix("__"): v for k, v in vars_.items()}
    assert TicketContext.from_mapping(plain) == c


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ticket_id", ""),
        ("ticket_id", "T-1\r\nAction: Hangup"),
        ("ticket_id", "T" * 41),
        ("origin", "999"),
        ("callback", "138-0000"),
        ("division", "44010"),
        ("urgency", "panic"),
        ("category", "a,b"),
    ],
)
def test_bad_structured_values_are_refused_with_the_field_named(field: str, value: str) -> None:
    kwargs = {"ticket_id": "T-1", "origin": "110", field: value}
    with pytest.raises(ContextError) as err:
        TicketContext(**kwargs)
    assert err.value.field == field


def test_oversized_header_from_a_peer_is_refused() -> None:
    headers = {"X-Ticket-Id": "T-1", "X-Ticket-Origin": "110", "X-Ticket-Summary": "%41" * 400}
    with pytest.raises(ContextError, match="summary"):
        TicketContext.from_mapping(headers, by="header")


@given(st.text(max_size=2000))
def test_any_text_encodes_to_a_bounded_safe_token(text: str) -> None:
    token = encode_summary(text)
    assert SAFE_WIRE.match(token)
    assert len(token) <= SUMMARY_MAX_ENCODED
    assert len(decode_summary(token)) <= SUMMARY_MAX_CHARS
