"""Small IVR parts: numbers, queue estimates, settings, knowledge base, tickets, CLI."""

from __future__ import annotations

import argparse
import json

import pytest

from ivr import cli, contract, menus
from ivr.channel import AgiChannel
from ivr.knowledge import load_knowledge, parse_knowledge
from ivr.numbers import minutes_of, number_prompts
from ivr.queue_stats import DialplanQueueStats, QueueSnapshot, estimated_wait_s
from ivr.settings import IvrSettings
from ivr.testing import ScriptedPeer, ScriptedTransport, agi_headers, env_of
from ivr.tickets import IvrTicket, JsonlTicketSink, new_ticket_id
from telephony.ticket_context import TicketContext


@pytest.mark.parametrize(
    ("n", "names"),
    [
        (0, ["num_0"]),
        (7, ["num_7"]),
        (10, ["num_10"]),
        (13, ["num_10", "num_3"]),
        (20, ["num_2", "num_10"]),
        (99, ["num_9", "num_10", "num_9"]),
        (100, ["num_many"]),
        (-3, ["num_0"]),
    ],
)
def test_number_prompts(n, names):
    assert number_prompts(n) == names


def test_minutes_round_up_and_never_zero():
    assert [minutes_of(s) for s in (0, 1, 60, 61, 600)] == [1, 1, 1, 2, 10]


def test_estimated_wait():
    assert estimated_wait_s(QueueSnapshot(waiting=0, avg_hold_s=0)) == 0
    assert estimated_wait_s(QueueSnapshot(waiting=3, avg_hold_s=60, agents=2)) == 120
    assert estimated_wait_s(QueueSnapshot(waiting=3, avg_hold_s=60, agents=0)) == 240


async def test_dialplan_queue_stats_reads_asterisk_functions():
    peer = ScriptedPeer(
        [],
        variables={
            "QUEUE_WAITING_COUNT(q110)": "4",
            "QUEUEHOLDTIME": "45",
            "QUEUE_MEMBER(q110,logged)": "0",
        },
    )
    ch = AgiChannel(env_of(agi_headers("r")), ScriptedTransport(peer))
    snap = await DialplanQueueStats().snapshot("q110", ch)
    assert snap == QueueSnapshot(waiting=4, avg_hold_s=45.0, agents=1)
    assert 'GET VARIABLE "QUEUE_VARIABLES(q110)"' in peer.commands


async def test_dialplan_queue_stats_tolerates_missing_values():
    ch = AgiChannel(env_of(agi_headers("r")), ScriptedTransport(ScriptedPeer([])))
    assert await DialplanQueueStats().snapshot("q1", ch) == QueueSnapshot(0, 0.0, 1)


def test_settings_from_env():
    s = IvrSettings.from_env(
        {"HOTLINE_IVR_SURGE_WAIT_THRESHOLD_S": "30", "HOTLINE_IVR_SURGE_FORCED": "yes"}
    )
    assert (s.surge_wait_threshold_s, s.surge_forced) == (30, True)
    assert IvrSettings.from_env({}) == IvrSettings()
    with pytest.raises(ValueError):
        IvrSettings.from_env({"HOTLINE_IVR_DIGIT_TIMEOUT_MS": "soon"})


def test_shipped_knowledge_base_is_valid_and_small():
    kb = load_knowledge()
    categories = {c.value for c in menus.CATEGORIES}
    assert kb.entries
    assert {e.category for e in kb.entries} <= categories
    for category in categories:
        assert len(kb.for_category(category)) <= 4


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "a b", "category": "c", "key": 1, "question": "q", "answer": "a"},
        {"id": "a", "category": "c", "key": 0, "question": "q", "answer": "a"},
        {"id": "a", "category": "c", "key": 12, "question": "q", "answer": "a"},
        {"id": "a", "category": "c", "key": 1, "question": "", "answer": "a"},
    ],
)
def test_bad_knowledge_entries_rejected(entry):
    with pytest.raises(ValueError):
        parse_knowledge({"entries": [entry]})


def test_duplicate_knowledge_key_rejected():
    e = {"category": "c", "key": 1, "question": "q", "answer": "a"}
    with pytest.raises(ValueError):
        parse_knowledge({"entries": [{"id": "a", **e}, {"id": "b", **e}]})


def test_menus_stay_short():
    assert len(menus.CATEGORIES) <= 5
    assert len({c.key for c in menus.CATEGORIES}) == len(menus.CATEGORIES)
    assert menus.EMERGENCY_KEY not in menus.keys_of(menus.CATEGORIES)
    assert all(c.value in contract.DESTINATIONS for c in menus.EMERGENCY_DESKS)


def test_ticket_ids_fit_the_ticket_context():
    ids = {new_ticket_id("12345") for _ in range(100)}
    assert len(ids) == 100
    for tid in ids:
        assert TicketContext(ticket_id=tid, origin="12345").ticket_id == tid


async def test_jsonl_sink_appends(tmp_path):
    sink = JsonlTicketSink(tmp_path / "sub" / "t.jsonl")
    ctx = TicketContext(ticket_id="T1", origin="12345", summary='说"明"\n')
    await sink.record(IvrTicket("callback", ctx, callback_number="123456"))
    await sink.record(IvrTicket("self_service", ctx, answered_faq="x"))
    rows = [json.loads(x) for x in (tmp_path / "sub" / "t.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["callback", "self_service"]
    assert rows[0]["context"]["ticket_id"] == "T1"


def test_cli_registers_serve_and_prompts():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ivr", "serve", "--platform", "110", "--force-surge"])
    assert callable(args.func)
    settings = cli.settings_from_args(args)
    assert settings.surge_forced is True
    args = parser.parse_args(["ivr", "serve", "--platform", "12345", "--surge-threshold", "5"])
    assert cli.settings_from_args(args).surge_wait_threshold_s == 5
    args = parser.parse_args(["ivr", "prompts", "/tmp/x"])
    assert args.func is cli._prompts
    with pytest.raises(SystemExit):
        parser.parse_args(["ivr", "serve", "--platform", "999"])


def test_docs_name_every_key_code_and_destination():
    from pathlib import Path

    from ivr.flows import ROUTES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ivr.md").read_text(encoding="utf-8")
    names = [c.value for c in menus.CATEGORIES]
    names += [menus.DEFAULT_CATEGORY, menus.EMERGENCY_CATEGORY, "ivr.traffic"]
    names += [f"`{d}`" for d in contract.DESTINATIONS]
    names += list(ROUTES.values())
    missing = [n for n in names if n not in doc]
    assert not missing, missing
