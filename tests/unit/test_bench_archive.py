"""The archive benchmark's pure parts: cloned lab tickets, the naive path's statements, the
chunk order and the ratio's interval, the synthetic archive, windows, verdict, CSV cells."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

import pytest

from bench import bench_archive as ba
from telephony.archive.measures import figures
from telephony.archive.record import OUTCOMES
from telephony.archive.writer import table_rows, upsert_sql


@pytest.fixture(scope="module")
def templates() -> list[tuple[Any, int]]:
    return ba.template_records()


def _ids(rec: Any) -> set[str]:
    return ({rec.ticket["ticket_id"]} | {r["call_id"] for r in rec.calls}
            | {r["leg_id"] for r in rec.legs} | {s["step_id"] for s in rec.steps})


# --------------------------------------------------------------------------- throughput


def test_templates_are_the_named_lab_tickets_on_both_platforms(templates: Any) -> None:
    outcomes = Counter((r.ticket["platform"], r.ticket["outcome"]) for r, _ in templates)
    assert outcomes == {("12345", "answered"): 1, ("12345", "abandoned"): 1,
                        ("12345", "transferred"): 1, ("110", "answered"): 2,
                        ("12345", "three_party"): 1}
    assert sum(w for _, w in templates) == 100


def test_a_clone_has_fresh_ids_and_every_time_shifted(templates: Any) -> None:
    rec = next(r for r, _ in templates if r.ticket["outcome"] == "three_party")
    clone = ba.clone_record(rec, 7, 3600.0)
    assert not _ids(clone) & _ids(rec)
    assert clone.ticket["opened_at"] == pytest.approx(rec.ticket["opened_at"] + 3600)
    assert clone.ticket["answered_at"] == pytest.approx(rec.ticket["answered_at"] + 3600)
    assert [s["at"] - 3600 for s in clone.steps] == pytest.approx([s["at"] for s in rec.steps])
    assert clone.conferences[0]["ended_at"] == pytest.approx(
        rec.conferences[0]["ended_at"] + 3600)
    # Step ids look like Redis's (<ms>-<seq>), stay unique, and the transfer keeps naming
    # its transfer.started step.
    ids = [s["step_id"] for s in clone.steps]
    assert len(set(ids)) == len(ids) and all(i.split("-")[0].isdigit() for i in ids)
    (xfer,) = clone.transfers
    started = next(s for s in clone.steps if s["kind"] == "transfer.started")
    assert xfer["transfer_id"] == started["step_id"]
    # Everything else is as recorded, and every row names the new ticket.
    assert {r["ticket_id"] for r in [*clone.calls, *clone.legs, *clone.steps]} == {
        clone.ticket["ticket_id"]}
    assert clone.ticket["outcome"] == "three_party" and clone.ticket["agents"] == rec.ticket[
        "agents"]
    assert [s["data"] for s in clone.steps] == [s["data"] for s in rec.steps]
    assert {leg["call_id"] for leg in clone.legs} <= {c["call_id"] for c in clone.calls}
    # The original is untouched.
    assert rec.ticket["ticket_id"].startswith("T12345-1795920522")


def test_synthetic_records_are_distinct_ordered_and_deterministic(templates: Any) -> None:
    recs = ba.synthetic_records(templates, 300, spacing=2.0)
    assert len({(r.ticket["platform"], r.ticket["ticket_id"]) for r in recs}) == 300
    assert len({leg["leg_id"] for r in recs for leg in r.legs}) == sum(len(r.legs) for r in recs)
    opened = [r.ticket["opened_at"] for r in recs]
    assert opened == sorted(opened) and opened[1] - opened[0] == pytest.approx(2.0)
    again = ba.synthetic_records(templates, 300, spacing=2.0)
    assert [r.ticket for r in again] == [r.ticket for r in recs]
    share = Counter(r.ticket["outcome"] for r in recs)
    assert share["answered"] > share["transferred"] > 0 and share["three_party"] > 0
    warm = ba.synthetic_records(templates, 5, first=10_000_000, seed=1)
    assert not {r.ticket["ticket_id"] for r in warm} & {r.ticket["ticket_id"] for r in recs}


def test_the_naive_path_runs_the_writers_upserts_one_row_each(templates: Any) -> None:
    rec = next(r for r, _ in templates if r.ticket["outcome"] == "three_party")
    statements = list(ba.naive_statements(rec))
    rows = 1 + len(rec.calls) + len(rec.legs) + len(rec.transfers) + len(rec.conferences)
    assert len(statements) == rows + len(rec.steps)
    assert statements[0] == (upsert_sql("archive_tickets"),
                             table_rows("archive_tickets", [rec.ticket])[0])
    assert all(sql == upsert_sql("archive_steps") for sql, _ in statements[rows:])
    assert [args for _, args in statements[rows:]] == table_rows("archive_steps", rec.steps)


def test_chunks_alternate_abba() -> None:
    assert [ba.chunk_order(i) for i in range(4)] == [("a", "b"), ("b", "a"), ("a", "b"),
                                                     ("b", "a")]


def test_the_ratio_interval_over_chunk_pairs() -> None:
    assert ba.ratio_interval([1.0] * 5, [10.0] * 5) == (pytest.approx(10.0),
                                                         pytest.approx(10.0))
    rng = random.Random(3)
    a = [1.0 + rng.random() * 0.2 for _ in range(20)]
    b = [x * 12 * (1 + rng.uniform(-0.2, 0.2)) for x in a]
    lo, hi = ba.ratio_interval(a, b)
    assert lo < sum(b) / sum(a) < hi and 10 < lo and hi < 14
    assert ba.ratio_interval(a, b) == (lo, hi)  # seeded
    with pytest.raises(ValueError):
        ba.ratio_interval([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        ba.ratio_interval([], [])


def test_throughput_rates_and_ratio() -> None:
    tp = ba.Throughput(tickets=100, steps=1500, chunk=50, rows=2000,
                       seconds={"a": [0.5, 0.5], "b": [5.0, 5.0]})
    assert tp.rate("a", tp.tickets) == 100 and tp.rate("b", tp.steps) == 150
    assert tp.ratio == 10


# --------------------------------------------------------------------------- SLA archive


@pytest.fixture(scope="module")
def archive() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for part in ba.synthetic_archive(20_000, chunk=7_000):
        for table, rows in part.items():
            out.setdefault(table, []).extend(rows)
    return out


def test_the_synthetic_archive_spreads_over_60_days_in_time_order(archive: Any) -> None:
    tickets = archive["archive_tickets"]
    assert len(tickets) == 20_000
    opened = [t["opened_at"] for t in tickets]
    assert opened == sorted(opened)
    assert ba.END - 60 * ba.DAY_S <= opened[0] < ba.END - 59 * ba.DAY_S
    assert ba.END - ba.DAY_S < opened[-1] < ba.END
    assert len({(t["platform"], t["ticket_id"]) for t in tickets}) == 20_000
    assert {t["outcome"] for t in tickets} <= set(OUTCOMES)


def test_the_synthetic_archive_has_its_share_of_transfers_and_conferences(archive: Any) -> None:
    tickets, transfers = archive["archive_tickets"], archive["archive_transfers"]
    conferences = archive["archive_conferences"]
    n = len(tickets)
    assert 0.11 < len(transfers) / n < 0.15  # 10% transferred + 3% three-party
    assert 0.025 < len(conferences) / n < 0.035
    outcomes = Counter(t["outcome"] for t in tickets)
    assert 0.025 < outcomes["three_party"] / n < 0.035
    assert 0.06 < outcomes["abandoned"] / n < 0.08
    assert 0.06 < sum(t["platform"] == "110" for t in tickets) / n < 0.08
    keys = {(t["platform"], t["ticket_id"]) for t in tickets}
    assert all((r["platform"], r["ticket_id"]) in keys for r in transfers + conferences)
    assert all(t["transfers"] == 1 for t in tickets if t["outcome"] in ("three_party",
                                                                        "transferred"))
    # Every row converts to the writer's COPY arguments.
    for table, rows in archive.items():
        assert len(table_rows(table, rows[:50])[0]) == len(ba._TABLES[table][0])


def test_the_synthetic_archive_gives_plausible_sla_figures(archive: Any) -> None:
    out = figures(archive["archive_tickets"], archive["archive_transfers"],
                  archive["archive_conferences"])
    (g12345,) = [g for g in out["groups"] if g["group"]["platform"] == "12345"]
    answer = g12345["answer"]
    assert 0.8 < answer["answer_service_level"] < 0.95
    assert 0.88 < answer["connection_rate"] < 0.95
    assert 0.02 < g12345["three_party"]["share"] < 0.05
    assert g12345["three_party"]["duration"]["count"] == g12345["three_party"]["count"]
    assert 0.9 < g12345["transfers"]["12345->110"]["success_rate"] <= 1.0
    (g110,) = [g for g in out["groups"] if g["group"]["platform"] == "110"]
    assert g110["handoff"]["received"] == g110["tickets"]


def test_the_synthetic_archive_is_deterministic() -> None:
    first = next(ba.synthetic_archive(100))
    assert next(ba.synthetic_archive(100)) == first
    assert next(ba.synthetic_archive(100, seed=1)) != first


def test_windows_are_local_days_the_day_inside_the_month() -> None:
    w = ba.windows()
    day, month = w["day"], w["month"]
    assert day.end - day.start == ba.DAY_S and month.end - month.start == 30 * ba.DAY_S
    assert month.start <= day.start < day.end <= month.end
    for edge in (day.start, day.end, month.start, month.end):
        local = dt.datetime.fromtimestamp(edge, ba.TZ)
        assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert dt.datetime.fromtimestamp(month.end, ba.TZ).date() == dt.date(2026, 12, 1)


def test_verdict_line() -> None:
    assert ba.verdict([0.2, 0.25, 1.4]) == (
        "a day's figures under 1 s: met (median 0.250 s, max 1.400 s)")
    assert ba.verdict([1.2, 1.0, 0.9]).startswith("a day's figures under 1 s: missed")


# --------------------------------------------------------------------------- export, CLI


def test_csv_fields_and_the_null_sink() -> None:
    when = dt.datetime(2026, 12, 1, 8, 0, tzinfo=ba.TZ)
    assert ba.csv_fields(["12345", None, when, ["a", "b"], 3, False]) == [
        "12345", "", "2026-12-01T00:00:00+00:00", "a;b", 3, False]
    sink = ba.NullSink()
    assert sink.write("ab") == 2 and sink.write(b"xyz") == 3 and sink.bytes == 5


def test_the_export_query_covers_the_window_in_order() -> None:
    sql, params = ba.export_query(ba.windows()["month"])
    assert "FROM archive_tickets" in sql and "ORDER BY opened_at, platform, ticket_id" in sql
    assert params[:2] == list(ba.windows()["month"].bounds())


def test_with_database_and_the_command_line() -> None:
    assert ba.with_database("postgresql://u:p@127.0.0.1:5432/hotline", "x") == (
        "postgresql://u:p@127.0.0.1:5432/x")
    assert ba.command(ba.parse_args([])) == ".venv/bin/python bench/bench_archive.py"
    args = ba.parse_args(["--tickets", "400", "--dsn", "postgresql://u:secret@h/db"])
    assert ba.command(args) == (
        ".venv/bin/python bench/bench_archive.py --tickets 400 --dsn DSN")
    with pytest.raises(SystemExit):
        ba.parse_args(["--synthetic", "0"])


def test_the_load_average_line() -> None:
    assert ba.loads_text({"throughput": 3.21, "sla": 2.0, "end": 1.05}) == (
        "1-minute load average 3.2 as throughput began, 2.0 as sla began, 1.1 at the end")
