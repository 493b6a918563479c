"""The archive over HTTP: ticket search, one ticket, its full trace, bulk export.

Thin: the SQL, the cursor and the row shapes are telephony.archive.queries; here
are authorisation, the PostgreSQL pool and the choice between the archive and
the live store (Redis). Supervisors (their own platform) and admin only.

Where one ticket is read from: a ticket on a live call here (the tracker knows
it) from its Redis timeline, so a ticket archived once and called again shows as
it is now; else the archive; else a Redis timeline that is still there (a
ticket that ended a moment ago, before the archiver took it); else 404.
docs/archive.md ("Query API").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import asyncpg
import orjson
import redis.exceptions
from aiohttp import web

from telephony.api.tokens import PRINCIPAL
from telephony.archive import db, queries
from telephony.archive.measures import Thresholds
from telephony.archive.record import ArchiveRecord, build_record
from telephony.archive.sla_source import Window, sla_figures
from telephony.control import authz, validation
from telephony.control.authz import Principal
from telephony.control.errors import BadInput, ControlError, Forbidden, NotFound
from telephony.logging import get_logger

API = "/api/v1"
TICKETS = f"{API}/tickets"
EXPORT_PATH = f"{TICKETS}/export"
SLA_PATH = f"{API}/sla"
ACQUIRE_TIMEOUT_S = 5.0
EXPORT_BATCH = 1000  # rows per fetch from the export's server-side cursor
EXPORT_CHUNK = 64 * 1024  # bytes gathered before a write to the client
EXPORTS_AT_ONCE = 2  # each holds a pool connection for as long as it streams
TIMELINE_PAGE = 1000
TIMELINE_MAX = 20_000  # the store trims a timeline near 10,000 entries
DETAIL_PARAMS = frozenset(("platform",))

log = get_logger("telephony.api.archive")

# What makes the archive unavailable rather than the request wrong: PostgreSQL down,
# restarting or refusing us, a broken pooled connection, a slow query, no schema yet.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError, asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InterfaceError, asyncpg.UndefinedTableError, db.MigrationError)


class ArchiveUnavailable(ControlError):
    """PostgreSQL (or Redis, for a live ticket) cannot answer now; also too many exports."""

    code = "archive_unavailable"
    status = 503


def _unavailable(exc: BaseException) -> ArchiveUnavailable:
    return ArchiveUnavailable("the archive database is not reachable",
                              reason=type(exc).__name__)


PoolProvider = Callable[[], Awaitable[Any]]  # gives the asyncpg.Pool (or one shaped like it)


class TimelineStore(Protocol):
    """The live side: RedisReads (either of the service's stores) is one."""

    platform: str

    async def timeline(self, ticket_id: str, start: str = "-",
                       count: int = 1000) -> list[tuple[str, dict[str, str]]]: ...


async def open_pool(dsn: str) -> asyncpg.Pool:
    """The service's archive pool, with the schema migrated (as every service does)."""
    pool = await db.create_pool(dsn, within=ACQUIRE_TIMEOUT_S)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
    except BaseException:
        pool.terminate()
        raise
    return pool


class LazyPool:
    """A pool made on first use, inside the running loop, never at construction.

    A failure (PostgreSQL down) is a 503 archive_unavailable for that request and
    for those within `retry_s` after it, without trying; then the next request
    tries again. The service starts, and serves everything else, whatever
    PostgreSQL does.
    """

    def __init__(self, factory: Callable[[], Awaitable[Any]], *, retry_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._factory = factory
        self._retry_s = retry_s
        self._clock = clock
        self._pool: Any = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is not None:
                return self._pool
            if self._failed_at is not None and self._clock() - self._failed_at < self._retry_s:
                raise ArchiveUnavailable("the archive database is not reachable",
                                         reason="recent_failure")
            try:
                self._pool = await self._factory()
            except Exception as exc:
                self._failed_at = self._clock()
                log.warning("archive.pool_unavailable", error=repr(exc)[:300])
                raise _unavailable(exc) from exc
            if self._failed_at is not None:
                log.info("archive.pool_ready")
            self._failed_at = None
            return self._pool

    async def close(self, within: float = 5.0) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), within)
        except UNAVAILABLE:  # TimeoutError too: connections still busy
            pool.terminate()


def _never(ticket_id: str) -> bool:
    return False


@dataclass(frozen=True)
class ArchiveApi:
    """What create_app needs to serve the archive routes."""

    pool: PoolProvider
    store: TimelineStore
    # Is the ticket on a live call here now? (the service asks its tracker)
    active: Callable[[str], bool] = _never
    thresholds: Thresholds = field(default_factory=Thresholds)  # for GET /sla


DEPS = web.AppKey("archive_api", ArchiveApi)
EXPORT_SLOTS = web.AppKey("archive_export_slots", asyncio.Semaphore)


def _deps(request: web.Request) -> ArchiveApi:
    return request.app[DEPS]


def _own_platform(request: web.Request) -> str:
    return _deps(request).store.platform


def _supervisor(request: web.Request) -> Principal:
    who = request[PRINCIPAL]
    authz.require_supervisor(who, _own_platform(request))
    return who


@contextlib.asynccontextmanager
async def _connection(request: web.Request) -> AsyncIterator[Any]:
    """A pooled connection; PostgreSQL trouble on the way is 503 archive_unavailable."""
    pool = await _deps(request).pool()
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            yield conn
    except UNAVAILABLE as exc:
        log.warning("archive.query_unavailable", error=repr(exc)[:300])
        raise _unavailable(exc) from exc


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda value: orjson.dumps(value).decode())


def _scoped(query: queries.TicketQuery, who: Principal) -> queries.TicketQuery:
    """A supervisor searches its own platform's tickets; admin any platform, or all."""
    return replace(query, platform=_platform_for(who, query.platform))


def _platform_for(who: Principal, asked: str | None) -> str | None:
    """The platform a read covers: admin's choice (None: all), else the supervisor's own."""
    if who.role == "admin":
        return asked
    if asked not in (None, who.platform):
        raise Forbidden("a supervisor sees its own platform", code="other_platform")
    return who.platform


def _detail_platform(request: web.Request, who: Principal) -> str:
    """The platform whose rows a ticket read shows: this service's, or admin's choice."""
    for name in request.query:
        if name not in DETAIL_PARAMS:
            raise BadInput(f"unknown query parameter {name[:40]!r}", code="unknown_parameter",
                           allowed=sorted(DETAIL_PARAMS))
    own = _own_platform(request)
    platform = validation.token(request.query.get("platform") or own, "platform")
    if platform != own and who.role != "admin":
        raise Forbidden("a supervisor sees its own platform", code="other_platform")
    return platform


# --- the live side (Redis) -------------------------------------------------------------
async def _live_record(request: web.Request, platform: str,
                       ticket_id: str) -> ArchiveRecord | None:
    """The rows the archive would hold for the ticket, built now from its whole Redis
    timeline (telephony.archive.record, as the archiver does); None without one."""
    store = _deps(request).store
    if platform != store.platform:
        return None  # the live store holds this service's own platform only
    entries: list[tuple[str, dict[str, str]]] = []
    start = "-"
    try:
        while len(entries) < TIMELINE_MAX:
            got = await store.timeline(ticket_id, start=start, count=TIMELINE_PAGE)
            entries += got
            if len(got) < TIMELINE_PAGE:
                break
            start = f"({got[-1][0]}"  # exclusive: after the last entry read
    except (redis.exceptions.RedisError, OSError) as exc:
        raise ArchiveUnavailable("the live store is not reachable", code="store_unavailable",
                                 reason=type(exc).__name__) from exc
    try:
        return build_record(platform, ticket_id, entries)
    except ValueError:  # no timeline, or none of its entries is a step
        return None


def _live_detail(record: ArchiveRecord) -> dict[str, Any]:
    return {"ticket": queries.ticket_json({**record.ticket, "archived_at": None}),
            "calls": [queries.row_json(r) for r in record.calls],
            "legs": [queries.row_json(r) for r in record.legs],
            "transfers": [queries.row_json(r) for r in record.transfers],
            "conferences": [queries.row_json(r) for r in record.conferences]}


def _live_steps(record: ArchiveRecord) -> dict[str, Any]:
    return {"source": "live", "steps": [queries.step_json(s) for s in record.steps]}


ArchiveRead = Callable[[Any, str, str], Awaitable[dict[str, Any] | None]]
LiveView = Callable[[ArchiveRecord, bool], dict[str, Any]]


async def _one_ticket(request: web.Request, from_archive: ArchiveRead,
                      from_live: LiveView) -> web.Response:
    """Live if on a call here now, else archived, else live if Redis still has it."""
    who = _supervisor(request)
    platform = _detail_platform(request, who)
    ticket_id = validation.token(request.match_info["ticket_id"], "ticket_id")
    envelope = {"ticket_id": ticket_id, "platform": platform}
    active = platform == _own_platform(request) and _deps(request).active(ticket_id)
    record = await _live_record(request, platform, ticket_id) if active else None
    if record is None:
        async with _connection(request) as conn:
            archived = await from_archive(conn, platform, ticket_id)
        if archived is not None:
            return _json({**envelope, **archived})
        record = await _live_record(request, platform, ticket_id)
    if record is None:
        raise NotFound(f"no ticket {ticket_id} on platform {platform}", code="ticket_not_found")
    return _json({**envelope, **from_live(record, active)})


# --- handlers ----------------------------------------------------------------------------
async def search_tickets(request: web.Request) -> web.Response:
    who = _supervisor(request)
    query = _scoped(queries.parse_search(request.query.items(), time.time()), who)
    sql, params = queries.search_sql(query)
    async with _connection(request) as conn:
        rows = await conn.fetch(sql, *params, timeout=queries.QUERY_TIMEOUT_S)
    tickets, next_cursor = queries.page(rows, query.limit)
    return _json({"tickets": tickets, "next_cursor": next_cursor})


async def sla(request: web.Request) -> web.Response:
    """The SLA figures of a window (telephony.archive.measures), from the archive."""
    who = _supervisor(request)
    query = queries.parse_sla(request.query.items(), time.time())
    platform = _platform_for(who, query.platform)
    window = Window(query.since.timestamp(), query.until.timestamp())
    async with _connection(request) as conn:
        body = await sla_figures(conn, window, platform=platform, group_by=query.group_by,
                                 thresholds=_deps(request).thresholds)
    return _json(body)


async def _archived_ticket(conn: Any, platform: str, ticket_id: str) -> dict[str, Any] | None:
    rows = await queries.fetch_ticket(conn, platform, ticket_id)
    return None if rows is None else {"live": False, "active": False, **rows}


async def _archived_steps(conn: Any, platform: str, ticket_id: str) -> dict[str, Any] | None:
    steps = await queries.fetch_steps(conn, platform, ticket_id)
    return {"source": "archive", "steps": steps} if steps else None


async def get_ticket(request: web.Request) -> web.Response:
    return await _one_ticket(request, _archived_ticket, lambda record, active: {
        "live": True, "active": active, **_live_detail(record)})


async def get_timeline(request: web.Request) -> web.Response:
    return await _one_ticket(request, _archived_steps, lambda record, active: _live_steps(record))


def _export_headers(query: queries.TicketQuery, fmt: str) -> dict[str, str]:
    stamp = "%Y%m%dT%H%M%SZ"
    name = (f"tickets-{query.platform or 'all'}-{query.since.strftime(stamp)}-"
            f"{query.until.strftime(stamp)}.{fmt}")
    kind = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return {"Content-Type": f"{kind}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def export_tickets(request: web.Request) -> web.StreamResponse:
    """Every matching ticket, streamed from a server-side cursor: memory stays flat.

    PostgreSQL trouble before the first byte is a 503; after it, the download is cut
    off (no final chunk), so a client never takes a partial file for a whole one.
    """
    who = _supervisor(request)
    query, fmt = queries.parse_export(request.query.items(), time.time())
    query = _scoped(query, who)
    slots = request.app[EXPORT_SLOTS]
    if slots.locked():
        raise ArchiveUnavailable(f"at most {EXPORTS_AT_ONCE} exports run at once; retry later",
                                 code="too_many_exports")
    sql, params = queries.export_sql(query)
    resp = web.StreamResponse(headers=_export_headers(query, fmt))
    async with slots:
        pool = await _deps(request).pool()
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn, \
                    conn.transaction(isolation="repeatable_read", readonly=True):
                cursor = await conn.cursor(sql, *params)
                rows = await cursor.fetch(EXPORT_BATCH, timeout=queries.QUERY_TIMEOUT_S)
                await resp.prepare(request)
                await _stream(resp, cursor, rows, fmt)
        except UNAVAILABLE as exc:
            if not resp.prepared:
                log.warning("archive.query_unavailable", error=repr(exc)[:300])
                raise _unavailable(exc) from exc
            transport = request.transport
            if transport is None or transport.is_closing():
                log.info("archive.export_client_gone")  # nothing more to send anyone
                return resp
            # No JSON error can follow the bytes sent: aiohttp cuts the connection.
            log.warning("archive.export_cut", error=repr(exc)[:300])
            raise
    return resp


async def _stream(resp: web.StreamResponse, cursor: Any, rows: list[Any], fmt: str) -> None:
    """Write `rows` and the cursor's further batches, in chunks of about EXPORT_CHUNK."""
    encoder = queries.CsvEncoder()
    # A BOM, so that spreadsheets read the Chinese text as UTF-8.
    chunk = [("\ufeff" + encoder.header()).encode()] if fmt == "csv" else []
    size = sum(map(len, chunk))
    while rows:
        for row in rows:
            line = encoder.ticket(row).encode() if fmt == "csv" else queries.jsonl_line(row)
            chunk.append(line)
            size += len(line)
            if size >= EXPORT_CHUNK:
                await resp.write(b"".join(chunk))
                chunk, size = [], 0
        rows = (await cursor.fetch(EXPORT_BATCH, timeout=queries.QUERY_TIMEOUT_S)
                if len(rows) == EXPORT_BATCH else [])
    if chunk:
        await resp.write(b"".join(chunk))


def add_routes(app: web.Application, deps: ArchiveApi) -> None:
    """Serve the archive on `app`; `deps.pool()` gives the asyncpg pool when awaited."""
    app[DEPS] = deps
    app[EXPORT_SLOTS] = asyncio.Semaphore(EXPORTS_AT_ONCE)
    r = app.router
    r.add_get(TICKETS, search_tickets, allow_head=False)
    r.add_get(EXPORT_PATH, export_tickets, allow_head=False)  # before {ticket_id}
    r.add_get(f"{TICKETS}/{{ticket_id}}", get_ticket, allow_head=False)
    r.add_get(f"{TICKETS}/{{ticket_id}}/timeline", get_timeline, allow_head=False)
    r.add_get(SLA_PATH, sla, allow_head=False)
