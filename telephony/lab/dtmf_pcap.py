"""RFC 4733 telephone-event pcaps for SIPp's `play_pcap_audio`.

SIPp replays a pcap's RTP bytes as they are. The stock `dtmf_2833_*.pcap` files
all carry the same sequence numbers and timestamp, so a second press of a digit
in one call looks like a retransmission and Asterisk drops it. Here each press
gets its own timestamp and sequence range, so the presses of one call form one
continuous RTP stream.

Pure functions build bytes; `write_press_pcap` is the only one touching disk.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# RFC 4733 section 3.2 event codes.
DTMF_EVENT_CODES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
TELEPHONE_EVENT_PT = 101
CLOCK_RATE = 8000
END_PACKET_REPEATS = 3  # RFC 4733 2.5.1.4: the end packet is sent three times

_PCAP_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
_ETHERNET_HEADER = bytes.fromhex("0050bf990336000d8714ac24") + b"\x08\x00"  # IPv4 payload


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet and when (seconds after the pcap starts) it is sent."""

    offset_s: float
    payload: bytes


@dataclass(frozen=True)
class TelephoneEvent:
    """A decoded RTP telephone-event packet, for tests and diagnostics."""

    offset_s: float
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    event: int
    end: bool
    volume: int
    duration: int


def telephone_event_packets(
    digit: str,
    *,
    seq: int,
    timestamp: int,
    ssrc: int,
    duration_ms: int = 160,
    packet_ms: int = 20,
    volume: int = 10,
    payload_type: int = TELEPHONE_EVENT_PT,
) -> list[RtpPacket]:
    """The RTP packets of one key press: progress packets, then the end packet x3.

    All packets share the event's start `timestamp`; sequence numbers rise by one
    per packet (end repeats included) so the stream stays continuous.
    """
    if digit not in DTMF_EVENT_CODES:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    if duration_ms < packet_ms or packet_ms <= 0:
        raise ValueError("duration_ms must be >= packet_ms > 0")
    event = DTMF_EVENT_CODES[digit]
    samples_per_packet = CLOCK_RATE * packet_ms // 1000
    progress_count = duration_ms // packet_ms
    packets: list[RtpPacket] = []
    for index in range(progress_count + END_PACKET_REPEATS):
        is_end = index >= progress_count
        duration = samples_per_packet * (progress_count if is_end else index + 1)
        header = _rtp_header(
            payload_type, marker=index == 0, seq=seq + index, timestamp=timestamp, ssrc=ssrc
        )
        body = struct.pack(
            "!BBH", event, (0x80 if is_end else 0) | (volume & 0x3F), duration & 0xFFFF
        )
        packets.append(RtpPacket(index * packet_ms / 1000, header + body))
    return packets


def _rtp_header(payload_type: int, *, marker: bool, seq: int, timestamp: int, ssrc: int) -> bytes:
    return struct.pack(
        "!BBHII",
        0x80,  # version 2, no padding, extension or CSRC
        (0x80 if marker else 0) | payload_type,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


def pcap_bytes(
    packets: list[RtpPacket],
    *,
    src: tuple[str, int] = ("127.0.0.1", 6000),
    dst: tuple[str, int] = ("127.0.0.1", 6000),
) -> bytes:
    """A libpcap (Ethernet/IPv4/UDP) file holding `packets`. SIPp rewrites addresses."""
    out = bytearray(_PCAP_GLOBAL_HEADER)
    for ident, packet in enumerate(packets):
        frame = _ETHERNET_HEADER + _ipv4_udp(packet.payload, src, dst, ident)
        seconds = int(packet.offset_s)
        micros = round((packet.offset_s - seconds) * 1_000_000)
        out += struct.pack("<IIII", seconds, micros, len(frame), len(frame))
        out += frame
    return bytes(out)


def _ipv4_udp(payload: bytes, src: tuple[str, int], dst: tuple[str, int], ident: int) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload  # checksum 0: none
    ip_header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        ident & 0xFFFF,
        0,
        64,
        17,  # UDP
        0,
        _ip_bytes(src[0]),
        _ip_bytes(dst[0]),
    )
    checksum = _internet_checksum(ip_header)
    return ip_header[:10] + struct.pack("!H", checksum) + ip_header[12:] + udp


def _ip_bytes(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def _internet_checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_pcap(data: bytes) -> list[RtpPacket]:
    """The UDP payloads of an Ethernet/IPv4 pcap with their offsets from the first packet."""
    magic = struct.unpack("<I", data[:4])[0]
    if magic != 0xA1B2C3D4:
        raise ValueError("not a little-endian microsecond pcap")
    packets: list[RtpPacket] = []
    pos = 24
    first: float | None = None
    while pos + 16 <= len(data):
        seconds, micros, captured, _ = struct.unpack("<IIII", data[pos : pos + 16])
        frame = data[pos + 16 : pos + 16 + captured]
        pos += 16 + captured
        ip = frame[14:]
        ip_header_len = (ip[0] & 0x0F) * 4
        udp = ip[ip_header_len:]
        udp_len = struct.unpack("!H", udp[4:6])[0]
        stamp = seconds + micros / 1_000_000
        first = stamp if first is None else first
        packets.append(RtpPacket(round(stamp - first, 6), udp[8:udp_len]))
    return packets


def decode_telephone_event(packet: RtpPacket) -> TelephoneEvent:
    first, second, seq, timestamp, ssrc = struct.unpack("!BBHII", packet.payload[:12])
    if first >> 6 != 2:
        raise ValueError("not RTP version 2")
    event, flags, duration = struct.unpack("!BBH", packet.payload[12:16])
    return TelephoneEvent(
        offset_s=packet.offset_s,
        payload_type=second & 0x7F,
        marker=bool(second & 0x80),
        seq=seq,
        timestamp=timestamp,
        ssrc=ssrc,
        event=event,
        end=bool(flags & 0x80),
        volume=flags & 0x3F,
        duration=duration,
    )


def write_press_pcap(
    path: Path, digit: str, *, seq: int, timestamp: int, ssrc: int, duration_ms: int = 160
) -> int:
    """Write one press to `path`; returns the next free sequence number."""
    packets = telephone_event_packets(
        digit, seq=seq, timestamp=timestamp, ssrc=ssrc, duration_ms=duration_ms
    )
    path.write_bytes(pcap_bytes(packets))
    return (seq + len(packets)) & 0xFFFF
