"""The AMI event fast path reads every recorded event exactly as panoramisk does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from panoramisk.message import Message

from telephony.ami import AmiEvent, parse_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def wire(event: dict) -> str:
    """An event as Asterisk sends it (without the final blank line)."""
    lines = []
    for key, value in event.items():
        for one in value if isinstance(value, list) else [value]:
            lines.append(f"{key}: {one}")
    return "\r\n".join(lines)


def recorded_events() -> list[dict]:
    events = []
    for path in sorted(FIXTURES.glob("lab_*.jsonl")):
        with path.open() as lines:
            events += [json.loads(line) for line in lines if line.strip()]
    return events


def panoramisk_reading(text: str) -> dict:
    headers = dict(Message.from_line(text).items())
    headers.pop("content", None)  # panoramisk's (empty) body slot, not a header
    return headers


def test_every_recorded_event_reads_the_same_as_with_panoramisk():
    events = recorded_events()
    assert len(events) > 1000  # the whole lab library, repeated ChanVariable lines included
    assert any(isinstance(v, list) for e in events for v in e.values())
    for event in events:
        text = wire(event)
        assert parse_event(text) == panoramisk_reading(text), text[:200]


@pytest.mark.parametrize("text", [
    "Event: AsyncAGIExec\r\nResult: 200%20result%3D1\r\nCommandId: 7",  # quoted key
    "Event: X\r\nNoColonLine\r\nA: b: c\r\nEmpty: ",  # odd lines, ": " inside a value
    "Event: X\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nChanVariable: C=",  # repeats
    "Event: Ünïcode\r\nCallerIDName: 张三",
    "Event: X\r\nresult: %41%20 ",  # the quoted key in another case
])
def test_edge_lines_read_the_same_as_with_panoramisk(text):
    assert parse_event(text) == panoramisk_reading(text)


def test_an_event_is_a_plain_dict_that_carries_its_session():
    event = parse_event("Event: Hangup\r\nUniqueid: 1.2")  # parsed straight into an AmiEvent
    assert isinstance(event, AmiEvent) and event.manager is None
    event.manager = "session"
    assert dict(event) == {"Event": "Hangup", "Uniqueid": "1.2"}
    assert event.manager == "session"


# One spelling per header name: panoramisk folds "Result" and "result" in one event
# into one key, parse_event keeps both (Asterisk never sends such a pair).
_KEYS = st.sampled_from(["Event", "Channel", "ChanVariable", "Result", "ActionID",
                         "Uniqueid", "X", "Cause-txt"])
_TEXT = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                max_size=20)
_LINE = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", _KEYS, _TEXT),  # a header (repeats included)
    _TEXT,  # anything else: skipped by both readers unless it holds ": "
    st.builds(lambda k, v: f"{k}: {v}%3D%20", _KEYS, _TEXT),  # URL-escapes
)


@given(st.lists(_LINE, max_size=12))
def test_random_blocks_read_the_same_as_with_panoramisk(lines):
    text = "\r\n".join(["Event: Fuzz", *lines])
    assert parse_event(text) == panoramisk_reading(text)
