"""`hotline report`: an SLA report of a window of the ticket archive, as one HTML file.

    hotline report --from 2026-12-01 --to 2026-12-02 [--platform 12345]
                   [--out report.html] [--dsn postgresql://…]

Times are dates or ISO datetimes; without an offset they are in the platforms'
time zone (Asia/Shanghai). The window is [from, to): by default the 24 hours
up to now. The database is --dsn, else $HOTLINE_ARCHIVE_DSN, else the lab's.
Bad input and an unreachable or unmigrated archive exit 2 with one line on
stderr. A progress bar (tqdm, on stderr) shows on a terminal only.

`write_report` is the same for a caller in a running event loop (the demo):
matplotlib draws in a worker thread, so the loop keeps serving meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
from tqdm import tqdm

from telephony.archive.measures import Thresholds

DAY_S = 24 * 3600.0
PLATFORMS = ("12345", "110")


class ReportError(Exception):
    """Why no report could be written, in words for the operator."""


@dataclass(frozen=True)
class ReportSummary:
    path: Path
    lines: tuple[str, ...]  # one per platform: answered/offered, service level, transfers
    tickets: int
    transfers: int


def parse_when(text: str, timezone: str = Thresholds.timezone) -> float:
    """A date (its midnight) or an ISO datetime as epoch seconds; naive ones in `timezone`."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date or ISO datetime: {text!r} "
                         "(e.g. 2026-12-01 or 2026-12-01T08:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.timestamp()


def report_window(start: str | None, end: str | None, now: float) -> tuple[float, float]:
    """The [start, end) epoch window from --from/--to: end defaults to now, start to 24 h
    before end."""
    to = parse_when(end) if end else now
    since = parse_when(start) if start else to - DAY_S
    if not to > since:
        raise ValueError(f"--to ({end or 'now'}) must be after --from ({start or '24 h before'})")
    return since, to


def default_dsn() -> str:
    from telephony.archive.writer import ARCHIVE_DSN_ENV

    dsn = os.environ.get(ARCHIVE_DSN_ENV, "")
    if dsn:
        return dsn
    from telephony.lab.lab import Lab

    try:
        return Lab().postgres_dsn
    except OSError as exc:
        raise ReportError(f"no --dsn, no ${ARCHIVE_DSN_ENV}, and the lab's DSN cannot be "
                          f"read: {exc}") from None


def where(dsn: str) -> str:
    """The archive a DSN names, without its password, for messages."""
    try:
        url = urlsplit(dsn)
        port = f":{url.port}" if url.port else ""
    except ValueError:
        return "the archive"
    return f"the archive at {url.hostname}{port}{url.path}" if url.hostname else "the archive"


async def _load(dsn: str, start: float, end: float,
                platform: str | None) -> tuple[list[dict], list[dict], list[dict]]:
    from telephony.archive import db, sla_source

    try:
        conn = await db.connect(dsn)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError,
            asyncpg.InterfaceError) as exc:
        raise ReportError(f"cannot reach {where(dsn)}: "
                          f"{str(exc) or type(exc).__name__}") from None
    try:
        tickets, transfers, conferences = await sla_source.load(
            conn, sla_source.Window(start, end), platform)
    except asyncpg.UndefinedTableError:
        raise ReportError(f"{where(dsn)} has no archive tables yet (a service "
                          "or the store's writer applies the migrations at start)") from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ReportError(f"reading {where(dsn)} failed: {exc}") from None
    finally:
        await conn.close()
    return tickets, transfers, conferences


def _write(out: Path, text: str) -> None:
    part = out.with_name(out.name + ".part")
    try:
        part.write_text(text, encoding="utf-8")
        part.replace(out)  # never a half-written report under the real name
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from None


async def write_report(dsn: str, start: float, end: float, platform: str | None,
                       out: Path, *, thresholds: Thresholds | None = None) -> ReportSummary:
    """Load the window's rows, render the page, write it to `out`. ReportError on failure."""
    from telephony.archive.measures import figures
    from telephony.archive.sla_source import Window
    from telephony.report.charts import CHARTS
    from telephony.report.page import render_report, summary_lines

    try:
        t = thresholds or Thresholds.from_env(os.environ)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    try:
        window = Window(start, end)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    # disable=None: no bar unless stderr (where tqdm writes) is a terminal; CI logs stay clean.
    with tqdm(total=len(CHARTS) + 2, desc="report", unit="step", disable=None,
              leave=False) as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update()

        tickets, transfers, conferences = await _load(dsn, start, end, platform)
        step("loaded")
        html = await asyncio.to_thread(render_report, tickets, transfers, conferences, window,
                                       platform, thresholds=t, step=step)
        await asyncio.to_thread(_write, out, html)
        step("written")
    groups = figures(tickets, transfers, conferences, group_by=("platform",),
                     thresholds=t)["groups"]
    return ReportSummary(out, tuple(summary_lines(groups, t)), len(tickets), len(transfers))


def _when_arg(text: str) -> str:
    try:
        parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _run(args: argparse.Namespace) -> int:
    try:
        start, end = report_window(args.start, args.end, time.time())
        dsn = args.dsn or default_dsn()
        summary = asyncio.run(write_report(dsn, start, end, args.platform, Path(args.out)))
    except (ReportError, ValueError) as exc:
        print(f"hotline report: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {summary.path} ({summary.tickets} tickets, {summary.transfers} transfers)")
    for line in summary.lines:
        print(f"  {line}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="an HTML SLA report of a window of the ticket archive",
        description="Write a self-contained HTML report (tables and SVG charts) of the "
                    "archive's SLA figures for [--from, --to).")
    parser.add_argument("--from", dest="start", type=_when_arg, metavar="WHEN",
                        help="start (inclusive): a date or ISO datetime, Asia/Shanghai unless "
                             "it has an offset; default 24 h before --to")
    parser.add_argument("--to", dest="end", type=_when_arg, metavar="WHEN",
                        help="end (exclusive); default now")
    parser.add_argument("--platform", choices=PLATFORMS, help="one platform (default: both)")
    parser.add_argument("--out", default="report.html", help="the HTML file (default: %(default)s)")
    parser.add_argument("--dsn", help="the archive's PostgreSQL DSN (default: "
                                      "$HOTLINE_ARCHIVE_DSN, else the lab's)")
    parser.set_defaults(func=_run)
