"""Archive rows and SLA figures from recorded lab calls, checked against hand-computed values.

Each fixture is replayed as the service does it: one node's AMI events into a
tracker, each fact written to a ticket timeline with the real store's encoding
(telephony.store.timeline_write), then read back as Redis would return it
(tests/archive_fixtures.py). The expected times are read straight off the AMI
events quoted in each test.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from telephony.archive.measures import (
    Thresholds,
    answer_figures,
    figures,
    handoff_figures,
    percentile,
    three_party_figures,
    transfer_figures,
)
from telephony.archive.record import build_record, destination_platform
from telephony.archive.writer import table_rows, upsert_sql
from tests.archive_fixtures import ticket, timelines


def only_record(name: str, platform: str) -> Any:
    sink = timelines(name, platform)
    assert len(sink.entries) == 1, sink.entries.keys()
    ticket_id, entries = next(iter(sink.entries.items()))
    return build_record(platform, ticket_id, entries), sink


def test_a_one_key_transfer_on_the_12345_side() -> None:
    rec, sink = only_record("lab_blind_transfer_cross_trunk", "12345")
    t = rec.ticket
    assert sink.ended == [t["ticket_id"]]  # its end marked it for the archive
    assert (t["outcome"], t["origin"], t["callback"], t["queue"]) == (
        "transferred", "12345", "13999990001", "q12345")
    assert t["agents"] == ["agent12345-1"] and t["transfers"] == 1
    # QueueCallerJoin 1795919200.103150, AgentConnect 1795919200.112788
    assert t["answered_at"] - t["queued_at"] == pytest.approx(0.009638, abs=1e-6)
    (xfer,) = rec.transfers
    assert (xfer["kind"], xfer["status"], xfer["direction"]) == ("blind", "completed",
                                                                 "12345->110")
    # BlindTransfer 1795919201.129722; the trunk leg answered (Newstate Up) 1795919201.147504
    assert xfer["initiated_at"] == pytest.approx(1795919201.129722, abs=1e-6)
    assert xfer["target_answer_at"] - xfer["initiated_at"] == pytest.approx(0.017782, abs=1e-6)
    roles = sorted((leg["role"], leg["agent"]) for leg in rec.legs)
    assert roles == [("agent", "agent12345-1"), ("caller", ""), ("trunk", "")]
    # Every step is kept, in order, once.
    assert len(rec.steps) == t["steps"] == len(sink.entries[t["ticket_id"]])
    assert [s["at"] for s in rec.steps] == sorted(s["at"] for s in rec.steps)
    (call,) = rec.calls
    # Newstate Up of the caller 1795919199.601685 (the ticket's first step), Hangup 207.608463
    assert call["ended_at"] == pytest.approx(1795919207.608463, abs=1e-6)


def test_the_same_ticket_on_the_110_side_was_received_from_12345() -> None:
    rec, _ = only_record("lab_blind_transfer_cross_trunk", "110")
    t = rec.ticket
    assert (t["outcome"], t["origin"], t["platform"]) == ("answered", "12345", "110")
    assert t["agents"] == ["agent110-1"]
    assert {leg["role"] for leg in rec.legs} == {"trunk", "agent"}


def test_a_queue_abandon() -> None:
    rec, _ = only_record("lab_queue_abandon", "12345")
    assert rec.ticket["outcome"] == "abandoned"
    assert rec.ticket["abandoned_at"] is not None and rec.ticket["answered_at"] is None


def test_a_three_party_call_and_its_conference() -> None:
    rec, _ = only_record("lab_conference_three_party", "12345")
    assert rec.ticket["outcome"] == "three_party"
    (conf,) = rec.conferences
    assert conf["parties"] == 3 and conf["started_at"] is not None


def test_building_twice_gives_the_same_rows_and_unknown_entries_are_left_out() -> None:
    sink = timelines("lab_blind_transfer_cross_trunk", "12345")
    ticket_id, entries = next(iter(sink.entries.items()))
    noisy = [*entries, ("999-0", {"kind": "", "ts": "x"})]
    assert build_record("12345", ticket_id, noisy) == build_record("12345", ticket_id, entries)
    with pytest.raises(ValueError, match="no timeline steps"):
        build_record("12345", ticket_id, [])


@pytest.mark.parametrize(("destination", "platform"), [
    ("110@hotline-xfer", "110"), ("PJSIP/12345@trunk12345", "12345"), ("Local/120@x", "120"),
    ("1100", ""), ("9912345", ""), ("", "")])
def test_destination_platform(destination: str, platform: str) -> None:
    assert destination_platform(destination) == platform


def test_rows_become_upsert_arguments_with_times_as_datetimes() -> None:
    rec, _ = only_record("lab_blind_transfer_cross_trunk", "12345")
    (row,) = table_rows("archive_tickets", [rec.ticket])
    assert row[0] == "12345" and row[10].tzinfo is not None  # opened_at
    steps = table_rows("archive_steps", rec.steps)
    assert steps[0][7].startswith("{")  # step data as JSON text for jsonb
    assert "DO NOTHING" in upsert_sql("archive_steps")
    assert "archived_at = now()" in upsert_sql("archive_tickets")


# --- the SLA measures, on hand-made rows whose answers are worked out by hand ---------

def test_answer_figures_exclude_short_abandons_and_count_15_s_as_within() -> None:
    rows = [ticket("a", 100, 115),  # 15 s: within
            ticket("b", 100, 115.5),  # over
            ticket("c", 100, abandoned=103),  # short abandon (< 5 s): not offered
            ticket("d", 100, abandoned=130),  # abandoned
            ticket("e", None)]  # never queued (IVR only)
    f = answer_figures(rows, Thresholds())
    assert (f["offered"], f["answered"], f["answered_within"], f["abandoned"],
            f["short_abandons"]) == (3, 2, 1, 1, 1)
    assert f["answer_service_level"] == pytest.approx(1 / 3, abs=1e-4)
    assert f["connection_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert f["connection_target_met"] is False
    assert f["abandon_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert f["answer_wait"]["mean_s"] == pytest.approx(15.25)
    assert answer_figures([], Thresholds())["answer_service_level"] is None


def test_transfer_figures_per_direction() -> None:
    rows = [
        {"direction": "12345->110", "status": "completed", "kind": "blind",
         "initiated_at": 10.0, "target_answer_at": 12.0, "caller_drop_at": None},
        {"direction": "12345->110", "status": "failed", "kind": "blind",
         "initiated_at": 20.0, "target_answer_at": None, "caller_drop_at": 25.0},
        {"direction": "110->12345", "status": "completed", "kind": "attended",
         "initiated_at": 30.0, "target_answer_at": 34.0, "caller_drop_at": None},
    ]
    rows.append({"direction": "", "status": "completed", "kind": "redirect",  # into a
                 "initiated_at": 40.0, "target_answer_at": None, "caller_drop_at": None})
    f = transfer_figures(rows)
    assert set(f) == {"12345->110", "110->12345"}  # a conference move is not a hand-over
    assert f["12345->110"]["attempted"] == 2 and f["12345->110"]["success_rate"] == 0.5
    assert f["12345->110"]["caller_drops"] == 1
    assert f["12345->110"]["outcomes"] == {"completed": 1, "failed": 1}
    assert f["12345->110"]["setup"]["p50_s"] == 2.0
    assert f["110->12345"]["setup"]["mean_s"] == 4.0


def test_three_party_ends_agreed_first_receiver_and_police_first() -> None:
    rows = [ticket("a", 1, 2, outcome="three_party", negotiation="agreed_110"),
            ticket("b", 1, 2, outcome="three_party",
                   negotiation="no_agreement_first_receiver_keeps"),
            ticket("c", 1, 2, outcome="three_party", negotiation="agreed_12345",
                   police_first=True),
            ticket("d", 1, 2, outcome="answered")]
    confs = [{"platform": "12345", "ticket_id": "a", "started_at": 10.0, "ended_at": 70.0}]
    f = three_party_figures(rows, confs)
    assert f["count"] == 3 and f["share"] == 0.75
    assert f["ends"] == {"agreed": 1, "first_receiver": 1, "police_first": 1}
    assert f["duration"]["mean_s"] == 60.0


def test_handoff_completeness_counts_fields_not_carried() -> None:
    rows = [ticket("a", 1, 2, platform="110", origin="12345", callback="139", category="x",
                   division="440100"),
            ticket("b", 1, 2, platform="110", origin="12345", callback="139"),
            ticket("c", 1, 2, platform="110", origin="110")]  # taken here: not a hand-off
    f = handoff_figures(rows)
    assert f["received"] == 2
    assert f["fields"] == {"ticket_id": 1.0, "callback": 1.0, "category": 0.5,
                           "division": 0.5, "location": 0.0, "safety": 0.0}
    assert f["complete"] == 0.0


def test_figures_group_by_hour_in_china_time_and_by_direction() -> None:
    # 2026-12-01 00:30 UTC is 08:30 in Beijing.
    base = 1_796_085_000.0
    rows = [ticket("a", base, base + 3), ticket("b", base + 3600, base + 3700)]
    xfers = [{"platform": "12345", "ticket_id": "a", "direction": "12345->110",
              "status": "completed", "kind": "blind", "initiated_at": base + 10,
              "target_answer_at": base + 11, "caller_drop_at": None}]
    out = figures(rows, xfers, group_by=("platform", "hour"))
    hours = [g["group"]["hour"] for g in out["groups"]]
    assert hours == ["2026-12-01T08:00", "2026-12-01T09:00"]
    assert out["groups"][0]["answer"]["answered_within"] == 1
    assert out["groups"][1]["answer"]["answered_within"] == 0  # 100 s
    assert out["groups"][0]["transfers"]["12345->110"]["succeeded"] == 1
    assert out["groups"][0]["diversions"]["sent"] == {"12345->110": 1}
    with pytest.raises(ValueError, match="cannot group by"):
        figures(rows, xfers, group_by=("agent",))


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == 4.0


def test_thresholds_from_the_environment() -> None:
    t = Thresholds.from_env({"HOTLINE_SERVICE_LEVEL_S": "20", "HOTLINE_SHORT_ABANDON_S": "3",
                             "HOTLINE_CONNECTION_TARGET": "0.9", "HOTLINE_TIMEZONE": "UTC"})
    assert t == Thresholds(answer_s=20, short_abandon_s=3, connection_target=0.9,
                           timezone="UTC")
    assert Thresholds.from_env({}) == Thresholds()
    with pytest.raises(ValueError, match="HOTLINE_SHORT_ABANDON_S is not a number"):
        Thresholds.from_env({"HOTLINE_SHORT_ABANDON_S": "five"})
    with pytest.raises(ValueError, match="out of range"):
        Thresholds.from_env({"HOTLINE_CONNECTION_TARGET": "95"})
    with pytest.raises(ValueError, match="unknown time zone"):
        Thresholds.from_env({"HOTLINE_TIMEZONE": "Mars/Olympus"})


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError):
        Thresholds(answer_s=0)
    with pytest.raises(ValueError):
        Thresholds(connection_target=1.5)


def test_sla_gauges_from_figures_nan_when_no_calls() -> None:
    from prometheus_client import generate_latest

    from telephony import metrics
    from telephony.archive.sla_exporter import apply_figures

    rows = [ticket("a", 100, 110, queue="q12345"), ticket("b", 100, 130, queue="q12345")]
    xfers = [{"platform": "12345", "ticket_id": "a", "direction": "12345->110",
              "status": "completed", "kind": "blind", "initiated_at": 112.0,
              "target_answer_at": 113.0, "caller_drop_at": None}]
    apply_figures("12345", figures(rows, xfers, group_by=("platform", "queue")),
                  figures(rows, xfers), 1000.0)
    assert metrics.SLA_ANSWER_SERVICE_LEVEL.labels(
        platform="12345", queue="q12345")._value.get() == 0.5
    assert metrics.SLA_CONNECTION_RATE.labels(platform="12345")._value.get() == 1.0
    assert metrics.SLA_TRANSFER_SUCCESS.labels(
        platform="12345", direction="12345->110")._value.get() == 1.0
    assert metrics.SLA_COMPUTED_AT.labels(platform="12345")._value.get() == 1000.0
    apply_figures("110", figures([], []), figures([], []), 1000.0)  # nothing on 110
    assert math.isnan(metrics.SLA_CONNECTION_RATE.labels(platform="110")._value.get())
    assert b"hotline_sla_connection_rate_ratio" in generate_latest(metrics.REGISTRY)
