"""`hotline replay FILE`: run a recorded AMI fixture through the tracker.

A fixture is a JSON array or JSON Lines of AMI events, each the header dict
panoramisk delivered. The summary counts calls, legs, transfers by kind and
outcome, conferences and tickets, and the tracker's throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from telephony.tracker import Tracker

Event = Mapping[str, Any]


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """Read a fixture: a JSON array, or one JSON object per line."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        events = json.loads(stripped)
    else:
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(e, dict) for e in events):
        raise ValueError(f"{path}: every event must be a JSON object")
    return events


# Headers whose value names a channel, bridge, call, conference or ticket: the
# ones `renumber` rewrites so copies of a fixture don't collide.
_ID_SUFFIXES = ("Uniqueid", "UniqueId", "Linkedid", "BridgeId", "Channel")
_ID_KEYS = frozenset({"Conference", "BridgeName", "Newname"})


def renumber(events: Iterable[Event], tag: str, ts_shift: float = 0.0) -> Iterator[dict[str, Any]]:
    """Copies of `events` with every id suffixed by `-tag` and timestamps shifted.

    Used to build large or interleaved streams from small fixtures (benchmark,
    property tests). Ticket ids in ChanVariable/VarSet are suffixed too.
    """
    suffix = "-" + tag
    for event in events:
        out: dict[str, Any] = {}
        for key, value in event.items():
            if key == "Timestamp":
                value = f"{float(value) + ts_shift:.6f}"
            elif key.endswith("ChanVariable"):
                value = _renumber_vars(value, suffix)
            elif value and (key in _ID_KEYS or key.endswith(_ID_SUFFIXES)):
                value = value + suffix
            elif key == "Value" and event.get("Variable", "").lstrip("_") == "TICKET_ID":
                value = value + suffix
            out[key] = value
        yield out


def _renumber_vars(value: str | list[str], suffix: str) -> str | list[str]:
    def one(item: str) -> str:
        name, _, val = item.partition("=")
        return f"{name}={val}{suffix}" if name.lstrip("_") == "TICKET_ID" and val else item

    return one(value) if isinstance(value, str) else [one(v) for v in value]


def replay(events: Iterable[Event], tracker: Tracker | None = None) -> dict[str, Any]:
    """Feed every event to a tracker; return the JSON-able summary."""
    tracker = tracker or Tracker()
    kinds: Counter[str] = Counter()
    count = 0
    started = time.perf_counter()
    for event in events:
        count += 1
        for domain_event in tracker.feed(event):
            kinds[domain_event.kind] += 1
    elapsed = time.perf_counter() - started
    return summarize(tracker, kinds, count, elapsed)


def summarize(tracker: Tracker, kinds: Counter[str], count: int, elapsed: float) -> dict[str, Any]:
    transfers: dict[str, dict[str, int]] = {}
    for key, n in tracker.totals.items():
        if key.startswith("transfers."):
            _, kind, outcome = key.split(".")
            transfers.setdefault(kind, {})[outcome] = n
    return {
        "events": count,
        "events_ignored": tracker.events_ignored,
        "calls": tracker.totals["calls"],
        "legs": tracker.totals["legs"],
        "transfers": transfers,
        "conferences": tracker.totals["conferences"],
        "tickets": tracker.totals["tickets"],
        "live": {"calls": len(tracker.calls), "legs": len(tracker.legs),
                 "bridges": len(tracker.bridges)},
        "domain_events": dict(sorted(kinds.items())),
        "anomalies": dict(sorted(tracker.anomalies.items())),
        "seconds": round(elapsed, 6),
        "events_per_second": round(count / elapsed) if elapsed > 0 else None,
    }


def _run(args: argparse.Namespace) -> int:
    try:
        events = load_events(args.file)
    except (OSError, ValueError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if args.events:
        # One domain event per line: review it, then save it as the fixture's
        # `<name>.expected.jsonl` to make a replay test.
        for line in domain_event_lines(events):
            print(line)
        return 0
    print(json.dumps(replay(events), indent=2, ensure_ascii=False))
    return 0


def domain_event_lines(events: Iterable[Event]) -> Iterator[str]:
    tracker = Tracker()
    for event in events:
        for domain_event in tracker.feed(event):
            yield json.dumps(domain_event.to_dict(), ensure_ascii=False, sort_keys=True)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay", help="run a recorded AMI fixture through the call tracker",
        description="Replay a JSON / JSON Lines AMI fixture and print a JSON summary.")
    parser.add_argument("file", help="fixture: a JSON array or JSON Lines of AMI events")
    parser.add_argument("--events", action="store_true",
                        help="print the domain events (JSON Lines) instead of the summary")
    parser.set_defaults(func=_run)
