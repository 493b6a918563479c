"""`hotline report`: the page rendered from in-memory archive rows, parsed back.

Rows come from recorded lab calls (tests/archive_fixtures.py: the same replay
into a tracker and build_record as the archive's own tests) plus hand-made
rows for what the lab recordings lack (waits over 15 s, other hours, police
first, a 110 -> 12345 transfer, hostile text). Every number on the page is
checked against telephony.archive.measures.figures over the same rows.
"""

from __future__ import annotations

import re
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from telephony import cli
from telephony.archive.measures import Thresholds, figures, percentile
from telephony.archive.sla_source import Window
from telephony.report import charts
from telephony.report.cli import DAY_S, parse_when, report_window, where
from telephony.report.page import answer_waits, render_report, transfer_setups
from tests.archive_fixtures import records, ticket
from tests.report_page import Page, check_charts

BASE = 1_796_085_000.0  # 2026-12-01 08:30 in Beijing
WINDOW = Window(1_795_900_000.0, BASE + DAY_S)
HOSTILE = "<script>alert('x')</script>"


def hand_made() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    tickets = [
        ticket("h1", BASE, BASE + 3, category=HOSTILE),
        ticket("h2", BASE + 3600, BASE + 3640, category="城建"),  # 40 s: over 15 s
        ticket("h3", BASE + 7200, abandoned=BASE + 7202),  # a short abandon
        ticket("h4", BASE + 7200, BASE + 7212, outcome="three_party", police_first=True),
        ticket("h5", BASE + 7300, BASE + 7330, platform="110", origin="110"),
        ticket("h6", BASE + 7400, BASE + 7404, platform="110", origin="110",
               outcome="transferred"),
        ticket("h7", BASE + 7500, BASE + 7501, platform="12345", origin="110",
               callback="13800000000", category="交通"),  # received from 110
    ]
    transfers = [{"platform": "110", "ticket_id": "h6", "direction": "110->12345",
                  "status": "completed", "kind": "blind", "initiated_at": BASE + 7410,
                  "target_answer_at": BASE + 7413.5, "caller_drop_at": None}]
    conferences = [{"platform": "12345", "ticket_id": "h4", "started_at": BASE + 7220,
                    "ended_at": BASE + 7280}]
    return tickets, transfers, conferences


@pytest.fixture(scope="module")
def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    recs = records()
    tickets, transfers, conferences = hand_made()
    return ([r.ticket for r in recs] + tickets,
            [t for r in recs for t in r.transfers] + transfers,
            [c for r in recs for c in r.conferences] + conferences)


@pytest.fixture(scope="module")
def page(rows: tuple[list[dict[str, Any]], ...]) -> tuple[str, Page]:
    html = render_report(*rows, WINDOW, None, generated_at=BASE + DAY_S)
    return html, Page(html)


def test_every_chart_is_an_inline_svg_with_drawn_data(page: tuple[str, Page]) -> None:
    _, p = page
    check_charts(p, empty=False)
    assert p.charts["answer_wait"]["threshold"] and p.charts["sla_by_hour"]["threshold"]


def test_the_page_is_self_contained_and_its_svg_ids_do_not_collide(
        page: tuple[str, Page]) -> None:
    html, p = page
    assert {"script", "link", "img", "iframe", "object"}.isdisjoint(p.tags)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    ids = [i for chart in p.charts.values() for i in chart["ids"]]
    assert len(ids) == len(set(ids)) > 100
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', html))
    assert refs and refs <= set(ids)  # every clip path, glyph and marker is on the page
    assert not re.search(r'(?:href|src)="(?!#)', html)  # nothing fetched from elsewhere


def test_the_summary_numbers_are_the_measures(page: tuple[str, Page], rows: Any) -> None:
    _, p = page
    groups = figures(*rows, group_by=("platform",))["groups"]
    assert set(p.summary) == {g["group"]["platform"] for g in groups} == {"12345", "110"}
    for g in groups:
        row = p.summary[g["group"]["platform"]]
        a = g["answer"]
        assert row == {
            "tickets": g["tickets"], "offered": a["offered"], "answered": a["answered"],
            "answer_service_level": a["answer_service_level"],
            "connection_rate": a["connection_rate"], "abandon_rate": a["abandon_rate"],
            "transfers": sum(x["attempted"] for x in g["transfers"].values()),
            "three_party_share": g["three_party"]["share"],
            "handoff_completeness": g["handoff"]["mean_field_share"]}
    # The lab calls and the hand-made rows give the page something to say everywhere.
    mine = next(g for g in groups if g["group"]["platform"] == "12345")
    assert mine["answer"]["short_abandons"] >= 1 and 0 < mine["answer"]["answer_service_level"] < 1
    assert mine["three_party"]["ends"] == {"not_recorded": 2, "police_first": 1}


def test_the_charts_draw_the_measures_own_durations(rows: Any) -> None:
    tickets, transfers, conferences = rows
    groups = figures(tickets, transfers, conferences, group_by=("platform",))["groups"]
    waits = answer_waits(tickets)
    setups, attempts = transfer_setups(transfers)
    for g in groups:
        summary, mine = g["answer"]["answer_wait"], waits[g["group"]["platform"]]
        assert (len(mine), percentile(mine, 50), percentile(mine, 90), max(mine)) == (
            summary["count"], summary["p50_s"], summary["p90_s"], summary["max_s"])
        for direction, x in g["transfers"].items():
            assert attempts[direction] >= x["attempted"]
            assert percentile(setups.get(direction, []), 50) == x["setup"]["p50_s"]
    assert set(setups) == {"12345->110", "110->12345", "unknown"}


def test_hostile_text_is_escaped(rows: Any) -> None:
    tickets, transfers, conferences = rows
    odd = [*tickets, ticket("h9", BASE, BASE + 1, platform='<b id="p">$x$</b>',
                            origin='<b id="p">$x$</b>', category="a & b")]
    html = render_report(odd, transfers, conferences, WINDOW, "<i>12345</i>",
                         generated_at=BASE)
    p = Page(html)
    assert "<script>" not in html and "<b id=" not in html and "<i>12345" not in html
    assert {"script", "b", "i"}.isdisjoint(p.tags)
    assert HOSTILE in p.text and "a & b" in p.text and "platform <i>12345</i>" in p.text
    assert '<b id="p">$x$</b>' in p.summary  # the hostile platform got its own row, escaped
    assert list(p.charts) == list(charts.CHARTS)  # and "$x$" did not upset mathtext


def test_an_empty_window_still_draws_every_chart_saying_so() -> None:
    html = render_report([], [], [], Window(BASE, BASE + 3600), "12345", generated_at=BASE)
    p = Page(html)
    check_charts(p, empty=True)
    assert "no tickets in this window" in p.text and p.summary == {}
    assert "2026-12-01 08:30:00 – 2026-12-01 09:30:00" in p.text  # the window, Beijing time


def test_the_page_names_its_thresholds_and_when_it_was_made(page: tuple[str, Page]) -> None:
    _, p = page
    assert "answered within 15 s" in p.text and "95%" in p.text
    assert "abandons under 5 s" in p.text and "Asia/Shanghai" in p.text
    assert "Generated 2026-12-02 08:30:00" in " ".join(p.text.split())
    custom = render_report([], [], [], WINDOW, None, generated_at=BASE,
                           thresholds=Thresholds(answer_s=20, connection_target=0.9))
    assert "answered within 20 s" in custom and "target 90%" in custom


def test_chinese_labels_use_the_cjk_font_and_fall_back_quietly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ends = {"12345": {"agreed": 1, "police_first": 2}}
    assert charts.CJK_FONT.replace(" ", "") + "-" in charts.three_party_chart(ends).svg

    def missing(*args: Any, **kwargs: Any) -> str:
        raise ValueError("no such font")

    charts._sans_serif.cache_clear()
    monkeypatch.setattr(charts.font_manager, "findfont", missing)
    try:
        assert charts.CJK_FONT not in charts._sans_serif()
        monkeypatch.undo()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a missing glyph would raise here
            chart = charts.three_party_chart(ends)
        assert not chart.empty and "<svg" in chart.svg
    finally:
        charts._sans_serif.cache_clear()


def test_labels_cannot_start_mathtext_and_stay_short() -> None:
    assert charts.label("$1$") == r"\$1\$"
    assert len(charts.label("x" * 100)) == 40


# --- the command line: window, DSN, errors ---------------------------------------------

def test_dates_and_datetimes_are_read_in_beijing_time_unless_they_say_otherwise() -> None:
    assert parse_when("2026-12-01") == BASE - 8.5 * 3600  # midnight in Beijing
    assert parse_when("2026-12-01T08:30") == BASE
    assert parse_when("2026-12-01 00:30:00+00:00") == BASE
    assert parse_when("2026-12-01T00:30Z") == BASE
    with pytest.raises(ValueError, match="not a date"):
        parse_when("yesterday")
    assert report_window(None, None, now=BASE) == (BASE - DAY_S, BASE)
    assert report_window("2026-12-01", None, now=BASE + 60) == (parse_when("2026-12-01"),
                                                                 BASE + 60)
    assert report_window(None, "2026-12-01T08:30", now=0.0) == (BASE - DAY_S, BASE)
    with pytest.raises(ValueError, match="must be after"):
        report_window("2026-12-02", "2026-12-01", now=BASE)


def test_messages_name_the_database_without_its_password() -> None:
    assert where("postgresql://hotline:s3cret@127.0.0.1:15432/hotline") == (
        "the archive at 127.0.0.1:15432/hotline")
    assert where("dbname=hotline password=s3cret") == "the archive"


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_an_unreachable_archive_is_exit_2_with_one_line(
        closed_port: int, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    dsn = f"postgresql://hotline:s3cret@127.0.0.1:{closed_port}/hotline"
    assert cli.main(["report", "--dsn", dsn, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hotline report: cannot reach the archive at 127.0.0.1:{closed_port}")
    assert "s3cret" not in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "yesterday"], "not a date or ISO datetime"),
    (["--platform", "119"], "invalid choice"),
])
def test_bad_arguments_are_exit_2(argv: list[str], message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["report", *argv])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_a_window_that_ends_before_it_starts_is_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--from", "2026-12-02", "--to", "2026-12-01",
                     "--dsn", "postgresql://x@127.0.0.1:1/x"]) == 2
    assert "must be after" in capsys.readouterr().err
