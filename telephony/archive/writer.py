"""Ended tickets into PostgreSQL: the archiver that runs in the store's writer process.

How a ticket gets there, and why nothing is lost:
1. When a call with a ticket ends, the store adds the ticket to the Redis sorted
   set `hl:<platform>:archive:pending` (score: the end time), in the same ordered
   write stream as the ticket's timeline steps: once it is pending, every step
   before its end is in Redis too. Redis (AOF) keeps the set across restarts.
2. This archiver takes pending tickets that have been quiet for `settle_s`,
   reads their timelines back, builds the rows (telephony.archive.record) and
   upserts a batch of tickets in one transaction. Steps are keyed by their
   timeline entry id (ON CONFLICT DO NOTHING) and the other rows are replaced,
   so writing a ticket twice leaves the same rows: exactly once, however often
   a retry happens.
3. Only then is a ticket taken off the set, and only if it was not marked again
   meanwhile (another of its calls ended): then it stays for the next round.
While PostgreSQL is down the set grows and the archiver retries with backoff;
the service's event path never waits for any of this (another process).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import orjson
import redis.asyncio as redis

from telephony.archive import db
from telephony.archive.record import ArchiveRecord, build_record
from telephony.logging import get_logger
from telephony.store import Keys

# The writer process reads the archive's DSN from here (the service sets it).
ARCHIVE_DSN_ENV = "HOTLINE_ARCHIVE_DSN"

# Takes a ticket off the pending set only if its score is not newer than the one archived.
_UNMARK = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""


def _when(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # table: (columns, key columns, timestamp columns)
    "archive_tickets": (
        ("platform", "ticket_id", "origin", "category", "callback", "division", "urgency",
         "summary", "queue", "agents", "opened_at", "closed_at", "queued_at", "answered_at",
         "abandoned_at", "outcome", "negotiation", "police_first", "transfers", "steps"),
        ("platform", "ticket_id"),
        ("opened_at", "closed_at", "queued_at", "answered_at", "abandoned_at")),
    "archive_calls": (
        ("platform", "call_id", "ticket_id", "started_at", "ended_at", "duration_s"),
        ("platform", "call_id"), ("started_at", "ended_at")),
    "archive_legs": (
        ("platform", "leg_id", "ticket_id", "call_id", "channel", "role", "agent",
         "created_at", "ring_at", "answer_at", "bridge_at", "left_at", "cause"),
        ("platform", "leg_id"),
        ("created_at", "ring_at", "answer_at", "bridge_at", "left_at")),
    "archive_transfers": (
        ("platform", "ticket_id", "transfer_id", "call_id", "kind", "status", "destination",
         "direction", "initiated_at", "target_ring_at", "target_answer_at", "finished_at",
         "caller_drop_at", "returned_at", "reason"),
        ("platform", "ticket_id", "transfer_id"),
        ("initiated_at", "target_ring_at", "target_answer_at", "finished_at",
         "caller_drop_at", "returned_at")),
    "archive_conferences": (
        ("platform", "ticket_id", "name", "started_at", "ended_at", "parties"),
        ("platform", "ticket_id", "name"), ("started_at", "ended_at")),
    "archive_steps": (
        ("platform", "ticket_id", "step_id", "at", "kind", "call_id", "leg", "data"),
        ("platform", "ticket_id", "step_id"), ("at",)),
}


def upsert_sql(table: str) -> str:
    columns, key, _ = _TABLES[table]
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    if table == "archive_steps":  # a step never changes: the first write stands
        conflict = "DO NOTHING"
    else:
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
        if table == "archive_tickets":
            updates += ", archived_at = now()"
        conflict = f"DO UPDATE SET {updates}"
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
            f"ON CONFLICT ({', '.join(key)}) {conflict}")


def table_rows(table: str, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as asyncpg arguments: times as datetimes, step data as JSON text."""
    columns, _, times = _TABLES[table]
    out = []
    for row in rows:
        values = []
        for column in columns:
            value = row[column]
            if column in times:
                value = _when(value)
            elif column == "data":
                value = orjson.dumps(value).decode()
            values.append(value)
        out.append(tuple(values))
    return out


async def write_records(conn: asyncpg.Connection, records: Sequence[ArchiveRecord]) -> int:
    """Upsert every row of `records` in one transaction; the number of steps offered."""
    parts = {
        "archive_tickets": [r.ticket for r in records],
        "archive_calls": [c for r in records for c in r.calls],
        "archive_legs": [leg for r in records for leg in r.legs],
        "archive_transfers": [t for r in records for t in r.transfers],
        "archive_conferences": [c for r in records for c in r.conferences],
        "archive_steps": [s for r in records for s in r.steps],
    }
    async with conn.transaction():
        for table, rows in parts.items():  # tickets first: the others reference them
            if rows:
                await conn.executemany(upsert_sql(table), table_rows(table, rows))
    return len(parts["archive_steps"])


@dataclass
class ArchiveStats:
    archived: int = 0  # tickets written (a re-archived ticket counts again)
    archived_steps: int = 0
    archive_errors: int = 0  # rounds that failed and were retried
    archive_unreadable: int = 0  # pending tickets with no timeline left: logged, dropped
    archive_pending: int = 0  # tickets waiting, at the last look
    archive_lag_ms: int = 0  # how long the oldest pending ticket has waited

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Archiver:
    redis: redis.Redis
    platform: str
    dsn: str
    batch: int = 100
    settle_s: float = 1.0  # a ticket quiet this long after a call ended is archived
    poll_s: float = 0.5
    retry_initial: float = 0.5
    retry_max: float = 15.0
    stats: ArchiveStats = field(default_factory=ArchiveStats)

    def __post_init__(self) -> None:
        self.keys = Keys(self.platform)
        self.pending = self.keys.archive_pending()
        self.log = get_logger("telephony.archive", platform=self.platform)
        self._unmark = self.redis.register_script(_UNMARK)
        self._conn: asyncpg.Connection | None = None

    async def run(self) -> None:
        """Archive forever; every failure is logged, counted and retried with backoff."""
        delay = self.retry_initial
        while True:
            try:
                done = await self.round()
                delay = self.retry_initial
                if not done:
                    await asyncio.sleep(self.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL or Redis down, a bad row: retried
                self.stats.archive_errors += 1
                if self.stats.archive_errors == 1 or self.stats.archive_errors % 20 == 0:
                    self.log.error("archive_round_failed", error=repr(exc)[:300],
                                   errors=self.stats.archive_errors, retry_in=delay)
                await self._drop_connection()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    async def round(self) -> int:
        """One batch: the number of tickets archived (0: nothing was due)."""
        now = time.time()
        due = cast(list[tuple[str, float]], await self.redis.zrangebyscore(
            self.pending, "-inf", now - self.settle_s, start=0, num=self.batch,
            withscores=True))
        await self._note_backlog(now)
        if not due:
            return 0
        conn = await self._connection()
        pipe = self.redis.pipeline(transaction=False)
        for ticket_id, _ in due:
            pipe.xrange(self.keys.timeline(ticket_id))
        timelines = await pipe.execute()
        records, unreadable = [], []
        for (ticket_id, _), entries in zip(due, timelines, strict=True):
            try:
                records.append(build_record(self.platform, ticket_id, entries))
            except ValueError as exc:
                unreadable.append(ticket_id)
                self.log.error("archive_ticket_unreadable", ticket_id=ticket_id,
                               error=str(exc)[:200])
        steps = await write_records(conn, records) if records else 0
        done = [item for pair in due for item in (pair[0], repr(pair[1]))]
        await self._unmark(keys=[self.pending], args=done)
        self.stats.archived += len(records)
        self.stats.archived_steps += steps
        self.stats.archive_unreadable += len(unreadable)
        await self._note_backlog(time.time())
        return len(due)

    async def _note_backlog(self, now: float) -> None:
        self.stats.archive_pending = int(await self.redis.zcard(self.pending))
        oldest = cast(list[tuple[str, float]],
                      await self.redis.zrange(self.pending, 0, 0, withscores=True))
        self.stats.archive_lag_ms = int(max(now - oldest[0][1], 0) * 1000) if oldest else 0

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await db.connect(self.dsn)
            applied = await db.migrate(conn)
            if applied:
                self.log.info("archive_migrated", versions=applied)
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        await self._drop_connection()
