"""Archive records from recorded lab AMI fixtures, and hand-made archive rows.

Each fixture is replayed as the service does it: one node's AMI events into a
tracker, each fact written to a ticket timeline with the real store's encoding
(telephony.store.timeline_write), then read back as Redis would return it, and
built into archive rows by telephony.archive.record.build_record.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from telephony.archive.record import ArchiveRecord, build_record
from telephony.fact_writes import persist_fact
from telephony.replay import load_events
from telephony.store import timeline_write
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ami"
# Recorded lab calls with both sides of the trunk: transfers, three-party calls, abandons.
LAB_CALLS = ("lab_blind_transfer_cross_trunk", "lab_attended_transfer_complete",
             "lab_attended_transfer_cancel", "lab_conference_three_party", "lab_pull_in_desk",
             "lab_transfer_no_answer", "lab_hangup_race", "lab_queue_abandon",
             "lab_simple_call", "lab_load_20")


class Timelines:
    """A FactSink keeping each ticket's timeline as XRANGE would return it."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.entries: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self.ended: list[str] = []
        self._seq = 0

    def append_timeline(self, ticket_id: str, kind: str, timestamp: str,
                        record: dict[str, Any] | None = None) -> None:
        flat = timeline_write("k", kind, timestamp, record)[2:]
        self._seq += 1
        self.entries.setdefault(ticket_id, []).append(
            (f"{self._seq}-0", dict(zip(flat[::2], flat[1::2], strict=True))))

    def put_call(self, call_id: str, record: dict[str, Any]) -> None:
        pass

    def end_call(self, call_id: str, record: dict[str, Any]) -> None:
        pass

    def ticket_ended(self, ticket_id: str, timestamp: str) -> None:
        self.ended.append(ticket_id)


def timelines(name: str, platform: str) -> Timelines:
    sink, tracker = Timelines(platform), Tracker()
    for event in load_events(FIXTURES / f"{name}.jsonl"):
        if event.get("SystemName") == f"node{platform}":
            for fact in tracker.feed(event):
                persist_fact(sink, fact)
    return sink


def records(names: Iterable[str] = LAB_CALLS,
            platforms: Iterable[str] = ("12345", "110")) -> list[ArchiveRecord]:
    """Every ticket's archive record in the fixtures `names`, on each platform's side."""
    out = []
    for name in names:
        for platform in platforms:
            for ticket_id, entries in timelines(name, platform).entries.items():
                out.append(build_record(platform, ticket_id, entries))
    return out


def ticket(tid: str, queued: float | None, answered: float | None = None,
           abandoned: float | None = None, **kw: Any) -> dict[str, Any]:
    """A hand-made ticket row (platform 12345, taken there unless `origin` says otherwise)."""
    return {"platform": "12345", "ticket_id": tid, "queued_at": queued, "answered_at": answered,
            "abandoned_at": abandoned, "opened_at": queued or 0.0, "origin": "12345",
            "outcome": "answered" if answered else "abandoned", **kw}
