"""Benchmark: the ticket archive in PostgreSQL: write throughput, SLA query time, export rate.

    .venv/bin/python bench/bench_archive.py [--tickets 5000] [--synthetic 1000000] [--dsn DSN]

Runs on a throw-away PostgreSQL cluster of its own (telephony.lab.private_postgres,
fsync on, as the lab's) unless --dsn names a server whose role may CREATE
DATABASE; then it works in scratch databases it creates and drops. Three parts,
each against a named baseline in the same run:

1. Archive throughput. The tickets of recorded lab calls (tests/archive_fixtures.py:
   AMI fixtures -> tracker -> timeline -> build_record), cloned with fresh ticket,
   call, leg and step ids and shifted times to --tickets tickets. (a) what the
   archiver does: telephony.archive.writer.write_records, 100 tickets per
   transaction; (b) naive: the same upsert statements, one awaited autocommit
   statement per row and per step. Each path writes into its own database, in
   chunks alternating a-b / b-a, so machine noise hits both; the ratio's 90%
   interval is a bootstrap over the chunk pairs.
2. SLA query time. --synthetic tickets spread over 60 days (transfers ~13%,
   three-party ~3% with a conference row) loaded by COPY, then ANALYZE;
   telephony.archive.sla_source.sla_figures for one day and for 30 days, grouped
   by platform and by platform + hour. Baseline: sla_source.load alone, the
   bare fetch of the same rows (the split of each sla_figures call into its
   fetch and its measures.figures is timed too).
3. Export rate over the 30 days: the service's export endpoint
   (GET /api/v1/tickets/export, CSV, telephony.api.archive) served in-process
   and read to a null sink, against PostgreSQL's own CSV (COPY (same SELECT) TO
   STDOUT). If the service has no export, a server-side cursor with csv.writer is
   measured instead, and the output says so.

stdout: a markdown block for BENCHMARKS.md; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import json
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402
from telephony.archive import db, sla_source  # noqa: E402
from telephony.archive.measures import NEGOTIATION_ENDS  # noqa: E402
from telephony.archive.record import ArchiveRecord  # noqa: E402
from telephony.archive.writer import _TABLES, table_rows, upsert_sql, write_records  # noqa: E402
from tests.archive_fixtures import records as fixture_records  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
DAY_S = 86_400.0
SPAN_DAYS = 60
MONTH_DAYS = 30
# The synthetic archive ends at local midnight, 2026-12-01 in Beijing.
END = dt.datetime(2026, 12, 1, tzinfo=TZ).timestamp()
BATCH = 100  # tickets per write_records transaction, as the archiver's Archiver.batch
TARGET_DAY_S = 1.0
# (fixture, platform, weight): the recorded calls the throughput tickets are cloned from.
TEMPLATES = (
    ("lab_simple_call", "12345", 70),
    ("lab_queue_abandon", "12345", 10),
    ("lab_blind_transfer_cross_trunk", "12345", 7),
    ("lab_blind_transfer_cross_trunk", "110", 7),
    ("lab_conference_three_party", "12345", 3),
    ("lab_conference_three_party", "110", 3),
)
TABLE_ORDER = ("archive_tickets", "archive_calls", "archive_legs", "archive_transfers",
               "archive_conferences", "archive_steps")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ throughput: records


def _is_time(name: str) -> bool:
    return name == "at" or name.endswith("_at")


def clone_record(rec: ArchiveRecord, n: int, shift: float) -> ArchiveRecord:
    """Ticket `rec` as a new ticket `n`: fresh ticket, call, leg and step ids (step ids
    as Redis gives them, <ms>-<seq>), every time moved by `shift` seconds. Pure."""
    ticket_id = f"T{rec.ticket['origin']}-{int(rec.ticket['opened_at'] + shift)}-b{n}"
    steps = sorted(rec.steps, key=lambda s: (s["at"], s["step_id"]))
    step_ids = {s["step_id"]: f"{int((s['at'] + shift) * 1000)}-{k}"
                for k, s in enumerate(steps)}

    def fresh(row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in row.items():
            if _is_time(name) and value is not None:
                value = value + shift
            elif name == "ticket_id":
                value = ticket_id
            elif name in ("call_id", "leg_id", "leg") and value:
                value = f"{value}-b{n}"
            elif name in ("step_id", "transfer_id"):
                value = step_ids.get(value, value)
            out[name] = value
        return out

    return ArchiveRecord(ticket=fresh(rec.ticket), calls=[fresh(r) for r in rec.calls],
                         legs=[fresh(r) for r in rec.legs],
                         transfers=[fresh(r) for r in rec.transfers],
                         conferences=[fresh(r) for r in rec.conferences],
                         steps=[fresh(r) for r in rec.steps])


def template_records() -> list[tuple[ArchiveRecord, int]]:
    out = []
    for name, platform, weight in TEMPLATES:
        (rec,) = fixture_records((name,), (platform,))
        out.append((rec, weight))
    return out


def synthetic_records(templates: Sequence[tuple[ArchiveRecord, int]], count: int, *,
                      first: int = 0, start: float = END - 10 * DAY_S, spacing: float = 2.0,
                      seed: int = 0) -> list[ArchiveRecord]:
    """`count` clones numbered from `first`, templates drawn by weight, one every
    `spacing` seconds from `start`. Deterministic for a seed."""
    rng = random.Random(seed)
    recs = [r for r, _ in templates]
    weights = [w for _, w in templates]
    out = []
    for i in range(first, first + count):
        rec = rng.choices(recs, weights)[0]
        out.append(clone_record(rec, i, start + i * spacing - rec.ticket["opened_at"]))
    return out


def steps_of(records: Sequence[ArchiveRecord]) -> int:
    return sum(len(r.steps) for r in records)


# ------------------------------------------------------------------ throughput: paths


async def write_batched(conn: asyncpg.Connection, records: Sequence[ArchiveRecord]) -> float:
    """(a) the archiver's way: write_records, BATCH tickets per transaction; seconds."""
    started = time.perf_counter()
    for i in range(0, len(records), BATCH):
        await write_records(conn, records[i:i + BATCH])
    return time.perf_counter() - started


def naive_statements(rec: ArchiveRecord) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(b)'s statements for one ticket: its ticket, call, leg, transfer and conference rows,
    then each step, each its own upsert (the same SQL write_records runs)."""
    parts = dict(zip(TABLE_ORDER, ([rec.ticket], rec.calls, rec.legs, rec.transfers,
                                   rec.conferences, rec.steps), strict=True))
    for table, rows in parts.items():
        sql = upsert_sql(table)
        for args in table_rows(table, rows):
            yield sql, args


async def write_naive(conn: asyncpg.Connection, records: Sequence[ArchiveRecord]) -> float:
    """(b) naive: one awaited autocommit statement per row and per step; seconds."""
    started = time.perf_counter()
    for rec in records:
        for sql, args in naive_statements(rec):
            await conn.execute(sql, *args)
    return time.perf_counter() - started


def chunk_order(i: int) -> tuple[str, str]:
    """Pair i's order: a-b, b-a, a-b... (ABBA: a drift in the machine's speed cancels)."""
    return ("a", "b") if i % 2 == 0 else ("b", "a")


def ratio_interval(a_seconds: Sequence[float], b_seconds: Sequence[float], *,
                   confidence: float = 0.9, resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of a's speed over b's, sum(b) / sum(a), drawing whole chunk pairs
    (both paths wrote the same tickets in pair i, close together in time). Seeded."""
    if len(a_seconds) != len(b_seconds) or not a_seconds:
        raise ValueError("ratio interval needs the same number (> 0) of chunks per path")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1): {confidence}")
    rng = random.Random(seed)
    pairs = range(len(a_seconds))
    ratios = []
    for _ in range(resamples):
        drawn = rng.choices(pairs, k=len(a_seconds))
        ratios.append(sum(b_seconds[i] for i in drawn) / sum(a_seconds[i] for i in drawn))
    tail = (1 - confidence) / 2 * 100
    return percentile(ratios, tail), percentile(ratios, 100 - tail)


@dataclasses.dataclass
class Throughput:
    tickets: int
    steps: int
    chunk: int
    rows: int  # every row of every table, steps included
    seconds: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {"a": [], "b": []})

    def rate(self, path: str, of: int) -> float:
        return of / sum(self.seconds[path])

    @property
    def ratio(self) -> float:
        return sum(self.seconds["b"]) / sum(self.seconds["a"])


async def throughput(admin_dsn: str, tickets: int, chunk: int) -> Throughput:
    templates = template_records()
    warm = synthetic_records(templates, BATCH, first=10_000_000, seed=1)
    recs = synthetic_records(templates, tickets)
    rows = sum(1 + len(r.calls) + len(r.legs) + len(r.transfers) + len(r.conferences)
               + len(r.steps) for r in recs)
    out = Throughput(tickets, steps_of(recs), chunk, rows)
    log(f"throughput: {tickets} tickets, {out.steps} steps, {rows} rows, "
        f"from {len(templates)} recorded tickets; chunks of {chunk}")
    async with scratch(admin_dsn, "a") as dsn_a, scratch(admin_dsn, "b") as dsn_b:
        conns = {"a": await db.connect(dsn_a), "b": await db.connect(dsn_b)}
        write = {"a": write_batched, "b": write_naive}
        try:
            for path, conn in conns.items():  # warm-up: statements prepared, caches filled
                await write[path](conn, warm)
                await conn.execute("TRUNCATE archive_tickets CASCADE")
            for i, first in enumerate(range(0, tickets, chunk)):
                part = recs[first:first + chunk]
                for path in chunk_order(i):
                    out.seconds[path].append(await write[path](conns[path], part))
            for path, conn in conns.items():  # both databases hold the same rows
                count = await conn.fetchval("SELECT count(*) FROM archive_steps")
                if count != out.steps:
                    raise RuntimeError(f"path {path} holds {count} steps, not {out.steps}")
        finally:
            for conn in conns.values():
                await conn.close()
    return out


# ------------------------------------------------------------------ SLA: synthetic archive


CATEGORIES = ("交通", "噪音", "供水", "物业", "治安", "医疗", "教育", "市场监管")
DIVISIONS = ("440103", "440104", "440105", "440106", "440111", "440112")
DIRECTIONS = (("12345->110", 80), ("12345->119", 8), ("12345->120", 8), ("12345->122", 4))
NEGOTIATIONS = tuple(NEGOTIATION_ENDS)


@dataclasses.dataclass(frozen=True)
class Mix:
    """Shares of the synthetic tickets (the rest: answered on 12345, taken there)."""

    abandoned: float = 0.07
    self_service: float = 0.03
    transferred: float = 0.10  # answered on 12345, then a transfer row
    three_party: float = 0.03  # answered on 12345, a threeway transfer and a conference
    received: float = 0.07  # 110's side of a hand-off: origin 12345


def synthetic_ticket(i: int, opened: float, rng: random.Random,
                     mix: Mix = Mix()) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                  list[dict[str, Any]]]:
    """Ticket i's archive_tickets row and its transfer and conference rows (epoch
    seconds), drawn from `rng`: waits and talk times exponential, most answered
    within 15 s."""
    u = rng.random()
    platform = "110" if u < mix.received else "12345"
    kind = "answered"
    for name, share in (("received", mix.received), ("abandoned", mix.abandoned),
                        ("self_service", mix.self_service),
                        ("transferred", mix.transferred), ("three_party", mix.three_party)):
        if u < share:
            kind = name
            break
        u -= share
    ticket_id = f"T12345-{int(opened)}-{i}"
    joined = opened + 3 + rng.random() * 15  # after the IVR
    queued: float | None = joined
    answered: float | None = None
    abandoned: float | None = None
    agents: list[str] = []
    transfers: list[dict[str, Any]] = []
    conferences: list[dict[str, Any]] = []
    negotiation, police_first = "", False
    if kind == "self_service":
        queued, closed, outcome = None, opened + 20 + rng.random() * 60, "self_service"
    elif kind == "abandoned":
        abandoned = joined + rng.expovariate(1 / 25)
        closed, outcome = abandoned, "abandoned"
    else:
        answered = joined + rng.expovariate(1 / 7)
        agents = [f"agent{platform}-{rng.randrange(1, 9)}"]
        talk = 30 + rng.expovariate(1 / 150)
        closed, outcome = answered + talk, "answered"
        if kind in ("transferred", "three_party"):
            at = answered + 10 + rng.random() * (talk - 10)
            status = "completed" if kind == "three_party" or rng.random() < 0.93 else (
                "failed" if rng.random() < 0.6 else "cancelled")
            setup = rng.expovariate(1 / 6) if status == "completed" else None
            direction = "12345->110" if kind == "three_party" else rng.choices(
                [d for d, _ in DIRECTIONS], [w for _, w in DIRECTIONS])[0]
            transfers.append({
                "platform": platform, "ticket_id": ticket_id, "transfer_id": f"{int(at * 1000)}-0",
                "call_id": f"node12345-{opened:.4f}", "status": status,
                "kind": "threeway" if kind == "three_party" else rng.choice(("blind", "attended")),
                "destination": direction.split(">")[1], "direction": direction,
                "initiated_at": at, "target_ring_at": at + 0.02,
                "target_answer_at": at + setup if setup is not None else None,
                "finished_at": at + (setup or 20.0),
                "caller_drop_at": at + 3 if status == "failed" and rng.random() < 0.3 else None,
                "returned_at": None, "reason": ""})
            if kind == "three_party":
                start = at + (setup or 0.0)
                conferences.append({"platform": platform, "ticket_id": ticket_id,
                                    "name": f"c{i}", "started_at": start,
                                    "ended_at": start + rng.expovariate(1 / 120),
                                    "parties": 3})
                closed = max(closed, conferences[0]["ended_at"])
                negotiation = rng.choice(NEGOTIATIONS)
                police_first = rng.random() < 0.15
                outcome = "three_party"
            elif status == "completed":
                outcome = "transferred"
    ticket = {
        "platform": platform, "ticket_id": ticket_id, "origin": "12345",
        "category": rng.choice(CATEGORIES) if kind != "self_service" else "",
        "callback": f"139{rng.randrange(10**8):08d}", "division": rng.choice(DIVISIONS),
        "urgency": "", "summary": "市民反映问题，请尽快处理" if rng.random() < 0.5 else "",
        "queue": f"q{platform}" if queued is not None else "", "agents": agents,
        "opened_at": opened, "closed_at": closed, "queued_at": queued,
        "answered_at": answered, "abandoned_at": abandoned, "outcome": outcome,
        "negotiation": negotiation, "police_first": police_first,
        "transfers": len(transfers), "steps": 15 + 10 * len(transfers)}
    return ticket, transfers, conferences


def synthetic_archive(count: int, *, end: float = END, days: int = SPAN_DAYS, seed: int = 0,
                      chunk: int = 50_000) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """`count` tickets opened in time order over the `days` before `end` (as the archive
    fills), in chunks of {table: rows}. Deterministic for a seed."""
    rng = random.Random(seed)
    step = days * DAY_S / count
    begin = end - days * DAY_S
    for first in range(0, count, chunk):
        out: dict[str, list[dict[str, Any]]] = {
            "archive_tickets": [], "archive_transfers": [], "archive_conferences": []}
        for i in range(first, min(count, first + chunk)):
            ticket, transfers, conferences = synthetic_ticket(
                i, begin + (i + rng.random()) * step, rng)
            out["archive_tickets"].append(ticket)
            out["archive_transfers"] += transfers
            out["archive_conferences"] += conferences
        yield out


async def load_archive(conn: asyncpg.Connection, count: int) -> dict[str, int]:
    """COPY the synthetic archive in; rows per table."""
    counts = dict.fromkeys(("archive_tickets", "archive_transfers", "archive_conferences"), 0)
    for part in synthetic_archive(count):
        for table, rows in part.items():
            await conn.copy_records_to_table(table, records=table_rows(table, rows),
                                             columns=list(_TABLES[table][0]))
            counts[table] += len(rows)
    await conn.execute("ANALYZE")
    return counts


# ------------------------------------------------------------------ SLA: timing


def windows(end: float = END) -> dict[str, sla_source.Window]:
    """The month: the last 30 local days; the day: a local day in its middle."""
    day = end - 15 * DAY_S
    return {"day": sla_source.Window(day, day + DAY_S),
            "month": sla_source.Window(end - MONTH_DAYS * DAY_S, end)}


@contextlib.contextmanager
def split_timer(times: dict[str, list[float]]) -> Iterator[None]:
    """While inside, each sla_source.load and measures.figures call that sla_figures makes
    is timed into times["fetch"] / times["figures"]."""
    real_load, real_figures = sla_source.load, sla_source.figures

    async def load(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await real_load(*args, **kwargs)
        finally:
            times["fetch"].append(time.perf_counter() - started)

    def figures(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real_figures(*args, **kwargs)
        finally:
            times["figures"].append(time.perf_counter() - started)

    sla_source.load, sla_source.figures = load, figures  # type: ignore[assignment]
    try:
        yield
    finally:
        sla_source.load, sla_source.figures = real_load, real_figures  # type: ignore[assignment]


GROUPINGS = {"platform": ("platform",), "platform+hour": ("platform", "hour")}


@dataclasses.dataclass
class SlaRuns:
    """One window's runs: the baseline fetch, and sla_figures per grouping (total and split)."""

    tickets: int = 0
    groups: dict[str, int] = dataclasses.field(default_factory=dict)
    fetch: list[float] = dataclasses.field(default_factory=list)
    total: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    split: dict[str, dict[str, list[float]]] = dataclasses.field(default_factory=dict)


async def sla_runs(conn: asyncpg.Connection, window: sla_source.Window, repeats: int) -> SlaRuns:
    out = SlaRuns()
    tickets, _, _ = await sla_source.load(conn, window)  # warm-up: plans, cache
    out.tickets = len(tickets)
    del tickets
    for name in GROUPINGS:
        out.total[name] = []
        out.split[name] = {"fetch": [], "figures": []}
    items = ["fetch", *GROUPINGS]
    for r in range(repeats):
        for item in items[r % len(items):] + items[:r % len(items)]:  # the order rotates
            started = time.perf_counter()
            if item == "fetch":
                await sla_source.load(conn, window)
                out.fetch.append(time.perf_counter() - started)
                continue
            with split_timer(out.split[item]):
                result = await sla_source.sla_figures(conn, window, group_by=GROUPINGS[item])
            out.total[item].append(time.perf_counter() - started)
            out.groups[item] = len(result["groups"])
    return out


async def ticket_plan(conn: asyncpg.Connection, window: sla_source.Window) -> str:
    """The plan PostgreSQL picks for the SLA's ticket query over the window (its top nodes)."""
    plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sla_source._TICKETS,
                               *window.bounds(), None)
    node = json.loads(plan)[0]["Plan"]
    names = []
    while node:
        names.append(node["Node Type"] + (f" on {node['Index Name']}" if "Index Name" in node
                                          else ""))
        node = (node.get("Plans") or [None])[0]
    return " > ".join(names)


def verdict(totals: Sequence[float], bound: float = TARGET_DAY_S) -> str:
    med, top = statistics.median(totals), max(totals)
    met = "met" if med < bound else "missed"
    return f"a day's figures under {bound:g} s: {met} (median {med:.3f} s, max {top:.3f} s)"


# ------------------------------------------------------------------ export


class NullSink:
    """Counts what is written to it and keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: str | bytes) -> int:
        self.bytes += len(data)
        return len(data)


def csv_fields(row: Sequence[Any]) -> list[Any]:
    """The fallback export's cells: times ISO 8601 UTC, lists ';'-joined, None empty."""
    out = []
    for value in row:
        if value is None:
            value = ""
        elif isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat()
        elif isinstance(value, list):
            value = ";".join(value)
        out.append(value)
    return out


def export_query(window: sla_source.Window) -> tuple[str, list[Any]]:
    """The export's SELECT over the window: the service's (queries.export_sql) if it has
    one, else every ticket column in (opened_at, platform, ticket_id) order."""
    since, until = window.bounds()
    try:
        from telephony.archive import queries
    except ImportError:
        columns = ", ".join(_TABLES["archive_tickets"][0])
        return (f"SELECT {columns} FROM archive_tickets WHERE opened_at >= $1 AND "
                "opened_at < $2 ORDER BY opened_at, platform, ticket_id", [since, until])
    return queries.export_sql(queries.TicketQuery(since, until))


def service_export() -> Callable[[str, sla_source.Window], Any] | None:
    """The service's export endpoint, if telephony.api.archive has one."""
    try:
        from telephony.api import archive
    except ImportError:
        return None
    if not all(hasattr(archive, name) for name in ("add_routes", "ArchiveApi", "EXPORT_PATH")):
        return None
    return export_over_http


async def export_over_http(dsn: str, window: sla_source.Window) -> tuple[int, int]:
    """GET the service's CSV export of the window (as admin) from an in-process server on
    loopback; (rows, bytes) read into a null sink."""
    from aiohttp import ClientSession, ClientTimeout, web

    from telephony.api import archive
    from telephony.api.tokens import PRINCIPAL
    from telephony.control.authz import Principal

    @web.middleware
    async def admin(request: web.Request, handler: Any) -> web.StreamResponse:
        request[PRINCIPAL] = Principal("admin", "bench", "12345")
        response: web.StreamResponse = await handler(request)
        return response

    pool = await db.create_pool(dsn, max_size=2)

    async def pool_provider() -> asyncpg.Pool:
        return pool

    app = web.Application(middlewares=[admin])
    runner = web.AppRunner(app, access_log=None)
    since, until = window.bounds()
    sink, lines = NullSink(), 0
    try:
        archive.add_routes(app, archive.ArchiveApi(pool_provider, _NoLiveStore()))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with ClientSession(timeout=ClientTimeout(total=600)) as http, http.get(
                f"http://127.0.0.1:{port}{archive.EXPORT_PATH}",
                params={"from": since.isoformat(), "to": until.isoformat(),
                        "format": "csv"}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"export answered {resp.status}: {await resp.text()}")
            async for data in resp.content.iter_any():
                sink.write(data)
                lines += data.count(b"\n")
    finally:
        await runner.cleanup()
        await pool.close()
    return lines - 1, sink.bytes  # less the header line (no text field holds a newline)


class _NoLiveStore:
    platform = "12345"

    async def timeline(self, ticket_id: str, start: str = "-",
                       count: int = 1000) -> list[tuple[str, dict[str, str]]]:
        return []


async def export_cursor(dsn: str, window: sla_source.Window) -> tuple[int, int]:
    """Fallback: server-side cursor (prefetch 1000) in a transaction, csv.writer into a
    null sink; (rows, bytes)."""
    sql, params = export_query(window)
    sink = NullSink()
    writer = csv.writer(sink, lineterminator="\r\n")
    rows = 0
    conn = await db.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            async for row in conn.cursor(sql, *params, prefetch=1000):
                writer.writerow(csv_fields(row))
                rows += 1
    finally:
        await conn.close()
    return rows, sink.bytes


async def export_copy(dsn: str, window: sla_source.Window) -> tuple[int, int]:
    """Baseline: PostgreSQL's own CSV of the same SELECT (COPY ... TO STDOUT); (rows, bytes)."""
    sql, params = export_query(window)
    sink = NullSink()
    lines = 0

    async def output(data: bytes) -> None:
        nonlocal lines
        sink.write(data)
        lines += data.count(b"\n")

    conn = await db.connect(dsn)
    try:
        await conn.copy_from_query(sql, *params, output=output, format="csv")
    finally:
        await conn.close()
    return lines, sink.bytes


@dataclasses.dataclass
class ExportRuns:
    measured: str  # what path (a) was
    rows: int = 0
    seconds: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {"a": [], "b": []})
    bytes: dict[str, int] = dataclasses.field(default_factory=dict)


async def export_runs(dsn: str, window: sla_source.Window, repeats: int,
                      prefer: str = "auto") -> ExportRuns:
    http = service_export() if prefer == "auto" else None
    if http is not None:
        out = ExportRuns("the service's export: GET /api/v1/tickets/export?format=csv "
                         "(telephony.api.archive.export_tickets, in-process, loopback)")
        path_a = http
    else:
        why = "the service has no export" if prefer == "auto" else "--export cursor"
        out = ExportRuns(f"fallback ({why}): server-side cursor (prefetch 1000) + csv.writer")
        path_a = export_cursor
    paths = {"a": path_a, "b": export_copy}
    for i in range(repeats):
        for path in chunk_order(i):
            started = time.perf_counter()
            rows, size = await paths[path](dsn, window)
            out.seconds[path].append(time.perf_counter() - started)
            out.bytes[path] = size
            if out.rows and rows != out.rows:
                raise RuntimeError(f"export path {path} gave {rows} rows, not {out.rows}")
            out.rows = rows
    return out


# ------------------------------------------------------------------ databases


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@contextlib.asynccontextmanager
async def scratch(dsn: str, tag: str) -> AsyncIterator[str]:
    """A migrated scratch database on `dsn`'s server, dropped afterwards."""
    name = f"hotline_bench_{tag}_{secrets.token_hex(4)}"
    admin = await db.connect(dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        scratch_dsn = with_database(dsn, name)
        conn = await db.connect(scratch_dsn)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        yield scratch_dsn
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def server_facts(dsn: str) -> dict[str, str]:
    conn = await db.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT current_setting('server_version') AS version, current_setting('fsync') AS "
            "fsync, current_setting('synchronous_commit') AS sync, "
            "current_setting('shared_buffers') AS buffers, current_setting('work_mem') AS work")
    finally:
        await conn.close()
    return dict(row)


# ------------------------------------------------------------------ run and report


@dataclasses.dataclass
class Result:
    args: argparse.Namespace
    server: dict[str, str]
    where: str
    throughput: Throughput
    loaded: dict[str, int]
    load_s: float
    sla: dict[str, SlaRuns]
    plans: dict[str, str]
    export: ExportRuns
    what_if: SlaRuns  # the day again, with WHAT_IF_INDEXES added
    loads: dict[str, float]  # 1-minute load average as each part began, and at the end
    started: dt.datetime
    seconds: float


# Diagnostic only, after everything else, in the SLA's scratch database: the SLA queries
# read all platforms, `$3::text IS NULL OR platform = $3`, which the migration's
# (platform, opened_at, ...) and (platform, initiated_at) indexes cannot serve.
WHAT_IF_INDEXES = ("CREATE INDEX ON archive_tickets (opened_at)",
                   "CREATE INDEX ON archive_transfers (initiated_at)")


def load_average() -> float:
    return os.getloadavg()[0]


async def bench(args: argparse.Namespace, dsn: str, where: str) -> Result:
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    server = await server_facts(dsn)
    loads = {"throughput": load_average()}
    tp = await throughput(dsn, args.tickets, args.chunk)
    log(f"throughput done ({time.perf_counter() - t0:.0f} s): ratio {tp.ratio:.1f}")
    async with scratch(dsn, "sla") as sla_dsn:
        conn = await db.connect(sla_dsn)
        try:
            loads["sla"] = load_average()
            t1 = time.perf_counter()
            loaded = await load_archive(conn, args.synthetic)
            load_s = time.perf_counter() - t1
            log(f"loaded {loaded} in {load_s:.1f} s")
            sla, plans = {}, {}
            for name, window in windows().items():
                plans[name] = await ticket_plan(conn, window)
                sla[name] = await sla_runs(conn, window, args.repeats)
                log(f"sla {name}: {sla[name].tickets} tickets, "
                    f"{ {k: round(statistics.median(v), 3) for k, v in sla[name].total.items()} }")
            loads["export"] = load_average()
            export = await export_runs(sla_dsn, windows()["month"], args.export_repeats,
                                       args.export)
            log(f"export: {export.rows} rows, {export.seconds}")
            for sql in WHAT_IF_INDEXES:
                await conn.execute(sql)
            await conn.execute("ANALYZE")
            plans["day + indexes"] = await ticket_plan(conn, windows()["day"])
            what_if = await sla_runs(conn, windows()["day"], args.repeats)
        finally:
            await conn.close()
    loads["end"] = load_average()
    return Result(args, server, where, tp, loaded, load_s, sla, plans, export, what_if, loads,
                  started, time.perf_counter() - t0)


def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def loads_text(loads: dict[str, float]) -> str:
    """'1-minute load average 3.2 as throughput began, ..., 2.9 at the end'."""
    parts = [f"{v:.1f} at the end" if k == "end" else f"{v:.1f} as {k} began"
             for k, v in loads.items()]
    return "1-minute load average " + ", ".join(parts)


def sla_rows(name: str, runs: SlaRuns) -> list[str]:
    out = []
    for grouping, totals in runs.total.items():
        split = runs.split[grouping]
        out.append(
            f"| {name} | {runs.tickets:,} | {grouping} | {runs.groups[grouping]:,} "
            f"| {_med(totals):.3f} s | {max(totals):.3f} s | {_med(split['fetch']):.3f} s "
            f"| {_med(split['figures']):.3f} s | {_med(runs.fetch):.3f} s "
            f"| {_med(totals) / _med(runs.fetch):.2f}× |")
    return out


def report(r: Result) -> str:
    tp, args = r.throughput, r.args
    lo, hi = ratio_interval(tp.seconds["a"], tp.seconds["b"])
    cmd = f"`{command(args)}`"
    lines = [
        "### Ticket archive (PostgreSQL): `bench/bench_archive.py`",
        "",
        f"Run of {r.started:%Y-%m-%d %H:%M} UTC, {cmd}, {r.seconds:.0f} s in all; "
        f"{os.cpu_count()} CPUs shared with other users, {loads_text(r.loads)}. "
        f"{r.where}: PostgreSQL {r.server['version']}, fsync {r.server['fsync']}, "
        f"synchronous_commit {r.server['sync']}, shared_buffers {r.server['buffers']}, "
        f"work_mem {r.server['work']}.",
        "",
        f"**Archive throughput.** {tp.tickets:,} tickets ({tp.steps:,} steps, {tp.rows:,} rows "
        f"in all) cloned from {len(TEMPLATES)} recorded lab tickets "
        "(simple call, abandon, blind transfer on both platforms, three-party call on both), "
        f"written by each path into its own database in {len(tp.seconds['a'])} chunks of "
        f"{tp.chunk} tickets, a-b / b-a alternating, after an untimed warm-up.",
        "",
        "| path | tickets/s | steps/s | rows/s |",
        "|---|---|---|---|",
        f"| (a) `write_records`, {BATCH} tickets per transaction (the archiver) "
        f"| {tp.rate('a', tp.tickets):,.0f} | {tp.rate('a', tp.steps):,.0f} "
        f"| {tp.rate('a', tp.rows):,.0f} |",
        "| (b) naive: one awaited autocommit upsert per row and per step "
        f"| {tp.rate('b', tp.tickets):,.0f} | {tp.rate('b', tp.steps):,.0f} "
        f"| {tp.rate('b', tp.rows):,.0f} |",
        f"| **ratio a / b** | **{tp.ratio:.1f}×** (90% interval {lo:.1f}–{hi:.1f}×, "
        "bootstrap over chunk pairs) | | |",
        "",
    ]
    loaded = r.loaded
    lines += [
        f"**SLA figures** (`sla_source.sla_figures`, all platforms) over "
        f"{loaded['archive_tickets']:,} synthetic tickets in {SPAN_DAYS} days "
        f"({loaded['archive_transfers']:,} transfers, {loaded['archive_conferences']:,} "
        f"conferences), loaded by COPY + ANALYZE in {r.load_s:.1f} s "
        f"({loaded['archive_tickets'] / r.load_s:,.0f} tickets/s). {args.repeats} run(s) each, "
        "order rotating, after a warm-up. Baseline: `sla_source.load` alone, the fetch of "
        "the same rows. The split columns are the two parts of each `sla_figures` call "
        "(`sla_source.load`, `measures.figures`); the rest of its time is building the "
        "result and freeing the rows as it returns.",
        "",
        "| window | tickets | group by | groups | figures median | max | fetch in it "
        "| measures.figures in it | baseline fetch median | figures / fetch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in r.sla.items():
        lines += sla_rows(name, runs)
    day = r.sla["day"]
    lines += [
        "",
        f"**{verdict(day.total['platform'])}** (grouped by platform); by platform + hour: "
        f"{verdict(day.total['platform+hour']).split(': ', 1)[1]}.",
        "",
    ]
    lines += [f"- Ticket query plan, {name}: {plan}." for name, plan in r.plans.items()]
    lines += [
        "- Diagnostic, not the schema under test: after the export, "
        + " and ".join(f"`{sql}`" for sql in WHAT_IF_INDEXES) + " (the SLA reads all "
        "platforms, which the migration's (platform, …) indexes cannot serve), the day again:",
        "",
        "| window | tickets | group by | groups | figures median | max | fetch in it "
        "| measures.figures in it | baseline fetch median | figures / fetch |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *sla_rows("day + indexes", r.what_if),
        "",
    ]
    ex = r.export
    rate = {p: ex.rows / _med(s) for p, s in ex.seconds.items()}
    lines += [
        f"**Export** of the {MONTH_DAYS}-day window ({ex.rows:,} tickets, CSV), "
        f"{len(ex.seconds['a'])} run(s) per path, alternating. Measured: {ex.measured}. "
        "Baseline: PostgreSQL's own CSV of the same SELECT (`COPY (…) TO STDOUT`).",
        "",
        "| path | rows/s (median) | seconds (median, max) | MB |",
        "|---|---|---|---|",
        f"| (a) {ex.measured.split(':')[0]} | {rate['a']:,.0f} | {_med(ex.seconds['a']):.1f}, "
        f"{max(ex.seconds['a']):.1f} | {ex.bytes['a'] / 1e6:.0f} |",
        f"| (b) COPY TO STDOUT (CSV) | {rate['b']:,.0f} | {_med(ex.seconds['b']):.1f}, "
        f"{max(ex.seconds['b']):.1f} | {ex.bytes['b'] / 1e6:.0f} |",
        f"| **ratio a / b** | **{rate['a'] / rate['b']:.2f}×** | | |",
    ]
    return "\n".join(lines)


def command(args: argparse.Namespace) -> str:
    """The command line that repeats this run (options left at their default omitted;
    a --dsn is named, not shown: it may hold a password)."""
    defaults = vars(parse_args([]))
    parts = [".venv/bin/python bench/bench_archive.py"]
    for name, value in vars(args).items():
        if value != defaults[name]:
            parts.append(f"--{name.replace('_', '-')} " + ("DSN" if name == "dsn" else str(value)))
    return " ".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tickets", type=int, default=5000, help="throughput: tickets per path")
    p.add_argument("--chunk", type=int, default=200, help="throughput: tickets per chunk")
    p.add_argument("--synthetic", type=int, default=1_000_000,
                   help="SLA and export: synthetic archived tickets")
    p.add_argument("--repeats", type=int, default=5, help="SLA: runs per window and grouping")
    p.add_argument("--export-repeats", type=int, default=2, help="export: runs per path")
    p.add_argument("--export", choices=("auto", "cursor"), default="auto",
                   help="export path (a): the service's endpoint if it has one (auto), or "
                   "the plain cursor + csv.writer")
    p.add_argument("--dsn", help="a PostgreSQL whose role may CREATE DATABASE (default: a "
                   "private cluster of this run's own)")
    args = p.parse_args(argv)
    if min(args.tickets, args.chunk, args.synthetic, args.repeats, args.export_repeats) < 1:
        p.error("every count must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dsn:
        result = asyncio.run(bench(args, args.dsn, "Server from --dsn"))
    else:
        from telephony.lab.private_postgres import private_postgres

        with private_postgres() as (dsn, _):
            result = asyncio.run(bench(args, dsn, "A private cluster (private_postgres)"))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
