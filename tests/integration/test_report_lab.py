"""`hotline report` on the lab's PostgreSQL: archived lab calls in, an HTML report out.

A scratch database (conftest `scratch_dsn`) is migrated and filled with the
archive records of recorded lab calls (tests/archive_fixtures.py) through the
archive's own writer; the command runs as `hotline report` does, and the page
is parsed back. No Asterisk call is made: only the lab's PostgreSQL is used.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telephony import cli
from telephony.archive import db, sla_source
from telephony.archive.measures import figures
from telephony.archive.writer import write_records
from telephony.report.cli import ReportError, parse_when, write_report
from tests.archive_fixtures import records
from tests.report_page import Page, check_charts

# The recorded lab calls were made on 2026-11-29 between 10:25 and 10:49, Beijing time.
DAY = ["--from", "2026-11-29", "--to", "2026-11-30"]


@pytest.fixture
async def archive(scratch_dsn: str) -> str:
    conn = await db.connect(scratch_dsn)
    try:
        await db.migrate(conn)
        await write_records(conn, records())
    finally:
        await conn.close()
    return scratch_dsn


async def hotline(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, list(argv))  # it runs its own event loop


async def test_a_report_of_archived_lab_calls(archive: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert await hotline("report", *DAY, "--dsn", archive, "--out", str(out)) == 0
    printed = capsys.readouterr()
    assert printed.err == ""  # not a terminal: no progress bar in the log
    assert printed.out.splitlines()[0].startswith(f"wrote {out} (")
    assert any(line.startswith("  12345: answered ") for line in printed.out.splitlines())
    page = Page(out.read_text(encoding="utf-8"))
    check_charts(page, empty=False)
    # The page's numbers are the measures over the rows the archive holds for the window.
    conn = await db.connect(archive)
    try:
        rows = await sla_source.load(conn, sla_source.Window(parse_when("2026-11-29"),
                                                             parse_when("2026-11-30")))
    finally:
        await conn.close()
    groups = figures(*rows, group_by=("platform",))["groups"]
    assert {g["group"]["platform"] for g in groups} == set(page.summary) == {"12345", "110"}
    for g in groups:
        row = page.summary[g["group"]["platform"]]
        assert (row["tickets"], row["offered"], row["answered"], row["connection_rate"]) == (
            g["tickets"], g["answer"]["offered"], g["answer"]["answered"],
            g["answer"]["connection_rate"])
    assert page.summary["12345"]["tickets"] == 29  # 9 recordings of one call, lab_load_20


async def test_one_platform_an_empty_window_the_demos_call_and_a_bad_out(
        archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "110.html"
    assert await hotline("report", *DAY, "--platform", "110", "--dsn", archive,
                         "--out", str(out)) == 0
    page = Page(out.read_text(encoding="utf-8"))
    assert set(page.summary) == {"110"} and "platform 110" in page.text
    assert page.charts["diversions"]["drawn"] and page.charts["transfer_setup"]["empty"] == "true"
    quiet = tmp_path / "quiet.html"
    assert await hotline("report", "--from", "2026-01-01", "--to", "2026-01-02T12:00",
                         "--dsn", archive, "--out", str(quiet)) == 0
    check_charts(Page(quiet.read_text(encoding="utf-8")), empty=True)
    assert "no tickets in this window" in capsys.readouterr().out
    summary = await write_report(archive, parse_when("2026-11-29"), parse_when("2026-11-30"),
                                 "12345", tmp_path / "demo.html")
    assert summary.path.exists() and summary.tickets == 29
    assert [line.split(":")[0] for line in summary.lines] == ["12345"]
    assert "connection rate" in summary.lines[0] and "transfers" in summary.lines[0]
    with pytest.raises(ReportError, match="end must be after"):
        await write_report(archive, 10.0, 5.0, None, tmp_path / "never.html")
    nowhere = tmp_path / "no-such-dir" / "r.html"
    assert await hotline("report", *DAY, "--dsn", archive, "--out", str(nowhere)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hotline report: cannot write {nowhere}") and not nowhere.exists()


async def test_an_archive_without_tables_is_exit_2(
        scratch_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.html"
    assert await hotline("report", "--dsn", scratch_dsn, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotline report: the archive at 127.0.0.1:")
    assert "has no archive tables yet" in err and len(err.splitlines()) == 1
    assert not out.exists()
