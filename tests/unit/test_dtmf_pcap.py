"""The RFC 4733 pcap writer: write, parse back, check every RTP field that matters."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from telephony.lab.dtmf_pcap import (
    DTMF_EVENT_CODES,
    END_PACKET_REPEATS,
    decode_telephone_event,
    parse_pcap,
    pcap_bytes,
    telephone_event_packets,
    write_press_pcap,
)

STOCK_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")


def _events(data: bytes):
    return [decode_telephone_event(p) for p in parse_pcap(data)]


def test_press_round_trips_through_pcap(tmp_path: Path) -> None:
    path = tmp_path / "press.pcap"
    next_seq = write_press_pcap(path, "5", seq=1000, timestamp=160_000, ssrc=0xCAFE)
    events = _events(path.read_bytes())

    assert len(events) == 160 // 20 + END_PACKET_REPEATS
    assert [e.seq for e in events] == list(range(1000, 1000 + len(events)))
    assert next_seq == 1000 + len(events)
    assert {e.timestamp for e in events} == {160_000}
    assert {e.ssrc for e in events} == {0xCAFE}
    assert {e.payload_type for e in events} == {101}
    assert {e.event for e in events} == {5}
    assert [e.marker for e in events] == [True] + [False] * (len(events) - 1)


def test_end_bit_sent_three_times_with_full_duration() -> None:
    events = _events(pcap_bytes(telephone_event_packets("#", seq=7, timestamp=0, ssrc=1)))
    ends = [e for e in events if e.end]
    assert len(ends) == 3
    assert events[-3:] == ends
    assert {e.duration for e in ends} == {160 * 8}  # 160 ms at 8 kHz
    progress = [e.duration for e in events if not e.end]
    assert progress == [160 * (i + 1) for i in range(8)]
    assert events[0].event == DTMF_EVENT_CODES["#"] == 11


def test_packets_are_paced_twenty_ms_apart() -> None:
    events = _events(pcap_bytes(telephone_event_packets("*", seq=0, timestamp=0, ssrc=1)))
    gaps = {round(b.offset_s - a.offset_s, 6) for a, b in itertools.pairwise(events)}
    assert gaps == {0.02}


def test_sequence_and_timestamp_wrap_at_field_width() -> None:
    events = _events(
        pcap_bytes(telephone_event_packets("1", seq=0xFFFE, timestamp=2**32 + 5, ssrc=2**32 + 9))
    )
    assert [e.seq for e in events[:4]] == [0xFFFE, 0xFFFF, 0, 1]
    assert events[0].timestamp == 5
    assert events[0].ssrc == 9


def test_rejects_non_dtmf_digit() -> None:
    with pytest.raises(ValueError, match="not a DTMF digit"):
        telephone_event_packets("x", seq=0, timestamp=0, ssrc=1)


def test_parser_reads_the_stock_sipp_pcap() -> None:
    # The stock file proves the parser matches what SIPp itself ships (and plays).
    events = _events(STOCK_PCAP.read_bytes())
    assert {e.event for e in events} == {1}
    assert sum(e.end for e in events) == 3
