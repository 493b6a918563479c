"""`hotline record`: record the real AMI event stream of a scripted lab scenario.

One AMI session per node (both nodes: each event carries its node's SystemName),
every event kept as Asterisk delivered it (repeated headers such as ChanVariable
stay lists), one JSON object per line in arrival order. Only the scenario's own
calls are kept: the lab is shared, and other users' calls would leak in. Recording
stops a moment after the scenario ends and no channel of ours remains. The lab is held exclusively
while recording, since other sessions use it too.

    hotline record --list
    hotline record simple_call --out tests/fixtures/ami/lab_simple_call.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panoramisk.message import Message

from telephony.ami import AmiSession
from telephony.lab.ami_scenarios import (
    CALLER_PREFIX,
    SCENARIOS,
    ScenarioFailed,
    ScenarioRun,
    describe,
    own_calls,
)
from telephony.lab.lab import Lab
from telephony.lab.topology import NODES

# The greeting each session gets at login: no SystemName, no Timestamp, not part of a call.
LOGIN_EVENTS = frozenset({"FullyBooted"})
SETTLE_S = 1.5  # late events (Hangup cascades, QueueMemberStatus) after the last channel


@dataclass(frozen=True)
class Recording:
    scenario: str
    events: list[dict[str, Any]]
    seconds: float

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["Event"]] = counts.get(event["Event"], 0) + 1
        return dict(sorted(counts.items()))


def event_record(message: Message) -> dict[str, Any]:
    """An AMI event as a JSON-ready dict, headers in wire order; panoramisk's empty
    `content` (body text, never used by events) is dropped."""
    record = dict(message.items())
    if not record.get("content"):
        record.pop("content", None)
    return record


def keep_own_calls(events: list[dict[str, Any]], caller_prefix: str) -> list[dict[str, Any]]:
    """Drop the events of calls someone else placed on the lab while we recorded.

    A call is a (node, Linkedid) group; it is ours when any of its events shows a caller,
    connected-line or ticket callback number (TICKET_CALLBACK crosses the trunk) with
    `caller_prefix`. Bridge create/destroy events follow their bridge's channels; events
    with no channel (queue members, peers) stay; the login greeting goes.
    """
    ours = own_calls(events, caller_prefix)
    our_bridges = {
        e["BridgeUniqueid"]
        for e in events
        if "BridgeUniqueid" in e and (e.get("SystemName", ""), e.get("Linkedid")) in ours
    }
    kept = []
    for event in events:
        if event.get("Event") in LOGIN_EVENTS:
            continue
        if "Linkedid" in event:
            keep = (event.get("SystemName", ""), event["Linkedid"]) in ours
        elif "BridgeUniqueid" in event:
            keep = event["BridgeUniqueid"] in our_bridges
        else:
            keep = True
        if keep:
            kept.append(event)
    return kept


def write_jsonl(events: Iterable[dict[str, Any]], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(event, ensure_ascii=False) for event in events]
    out.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return len(lines)


async def record(
    lab: Lab,
    scenario: str,
    *,
    settle_s: float = SETTLE_S,
    events: list[dict[str, Any]] | None = None,
) -> Recording:
    """Run `scenario` on the lab with AMI sessions to both nodes; return every event.

    Pass `events` to keep what was seen even when the scenario fails (for diagnosis).
    """
    run_scenario = SCENARIOS[scenario]
    events = [] if events is None else events
    sessions = {
        platform: AmiSession.for_node(
            node,
            lab.node_info(platform).ami_user,
            lab.node_info(platform).ami_secret,
            on_event=lambda message: events.append(event_record(message)),
            server_filter=False,
            ping_interval=30.0,
        )
        for platform, node in NODES.items()
    }
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        for session in sessions.values():
            await stack.enter_async_context(session)
        for session in sessions.values():
            await session.wait_ready(within=60.0)
        await run_scenario(ScenarioRun(lab, sessions, events))
        await asyncio.sleep(settle_s)
        restarted = [s.node_name for s in sessions.values() if s.generation != 1]
    if restarted or any(e.get("Event") == "Shutdown" for e in events):
        raise ScenarioFailed(f"a node restarted while recording ({restarted}); record again")
    return Recording(scenario, keep_own_calls(events, CALLER_PREFIX), time.monotonic() - started)


@contextlib.contextmanager
def _lab_held(lab: Lab, take_lock: bool) -> Iterator[None]:
    if take_lock:
        with lab.exclusive():
            yield
    else:
        yield


def _run(args: argparse.Namespace) -> int:
    if args.list:
        for name in SCENARIOS:
            print(f"{name:28} {describe(name)}")
        return 0
    if not args.scenario or not args.out:
        print("hotline record: give SCENARIO and --out FILE (or --list)", file=sys.stderr)
        return 2
    lab = Lab()
    with _lab_held(lab, take_lock=not args.lab_already_held):
        lab.up(timeout=90)  # idempotent: starts only what is not running
        seen: list[dict[str, Any]] = []
        try:
            recording = asyncio.run(record(lab, args.scenario, events=seen))
        except ScenarioFailed as exc:
            failed = args.out.with_suffix(".failed.jsonl")
            write_jsonl(seen, failed)
            print(
                f"hotline record: {args.scenario} failed: {exc}; "
                f"{len(seen)} events seen are in {failed}",
                file=sys.stderr,
            )
            return 1
    count = write_jsonl(recording.events, args.out)
    print(
        json.dumps(
            {
                "scenario": args.scenario,
                "out": str(args.out),
                "events": count,
                "seconds": round(recording.seconds, 1),
                "counts": recording.counts(),
            }
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "record", help="record the AMI events of a scripted lab scenario as JSON Lines"
    )
    parser.add_argument(
        "scenario", nargs="?", choices=sorted(SCENARIOS), metavar="SCENARIO", help="one of --list"
    )
    parser.add_argument("--out", type=Path, help="the .jsonl file to write")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument(
        "--lab-already-held",
        action="store_true",
        help="this process already holds the lab's lock (tests); do not take it again",
    )
    parser.set_defaults(func=_run)
