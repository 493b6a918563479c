"""The service's store: writes go to a writer process, reads and claims straight to Redis.

The event path only buffers facts and store calls as plain tuples (a few
hundred ns each). Every `frame_delay` (5 ms) the buffer is pickled into one frame and
written to the writer process (telephony.store_writer), which builds the Redis
writes and sends them, on the other core. Measured by bench/bench_pipeline.py
against the same store run in-process.

Guarantees, as for the in-process RedisStore:
- writes never await and never block the event loop;
- the buffer here is bounded (`max_pending`); when it is full, or the writer is
  gone, the oldest message is dropped, logged and counted
  (`hotline_store_buffer_dropped_total`), the writer's own buffer likewise;
- order is kept: one pipe, one writer, one Redis connection;
- `flush()` returns once every earlier write is in Redis.

If the writer exits (killed, crashed), a new one is started after
`restart_delay`; what the old one still held is lost (at most its buffer),
counted in `hotline_store_writer_restarts_total`. Restart recovery
(CoreShowChannels joined with Redis) makes good what a lost write left stale.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from telephony import metrics
from telephony.archive.writer import ARCHIVE_DSN_ENV
from telephony.fact_writes import writes_anything
from telephony.logging import get_logger
from telephony.store import Record, RedisReads, redis_client
from telephony.store_link import FLUSH, LEVEL_FIELDS, STAT_FIELDS, encode_frame, read_reply

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
_REPLY_LIMIT = 1 << 20  # longest reply line read; the writer sends at most MAX_LAGS lags


class ProcessStore(RedisReads):
    def __init__(self, url: str, platform: str, *, max_pending: int = 100_000,
                 frame_delay: float = 0.005, restart_delay: float = 0.5,
                 writer_max_buffer: int = 100_000, lag_log: str | None = None,
                 archive_dsn: str = "") -> None:
        super().__init__(redis_client(url), platform)
        self.url = url
        self.max_pending = max_pending
        # Gather this long after the first write of a frame: at 50,000 events/s
        # a frame holds about 250 facts, one pickle and one pipe write, and at
        # low rates one call's burst of events is one frame, not one per event.
        self.frame_delay = frame_delay
        self.restart_delay = restart_delay
        self.writer_max_buffer = writer_max_buffer
        self.lag_log = lag_log
        self.archive_dsn = archive_dsn  # when set, the writer also runs the archiver
        self._pending: deque[Any] = deque()
        self._first_at = 0.0  # when the oldest pending message was buffered
        self._wakeup = asyncio.Event()
        self._writer_up = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._tokens = itertools.count(1)
        self._flushes: dict[int, asyncio.Future[bool]] = {}
        self.dropped_here = 0  # dropped before reaching the writer
        self.restarts = 0
        self.writer_stats: dict[str, Any] = {}  # the current writer's last reported counters
        self._retired: dict[str, int] = {}  # the summed counters of writers that exited
        self._counted: dict[str, int] = {}  # what of writer_stats is already in the metrics
        self.log = get_logger("telephony.store", platform=platform)
        self._m_dropped = metrics.STORE_BUFFER_DROPPED.labels(platform=platform)
        self._m_depth = metrics.STORE_BUFFER_DEPTH.labels(platform=platform)
        self._m_lag = metrics.STORE_WRITE_LAG.labels(platform=platform)
        self._m_errors = metrics.STORE_FLUSH_ERRORS.labels(platform=platform)
        self._m_restarts = metrics.STORE_WRITER_RESTARTS.labels(platform=platform)
        self._m_archived = metrics.ARCHIVE_TICKETS.labels(platform=platform)
        self._m_archive_errors = metrics.ARCHIVE_ERRORS.labels(platform=platform)
        self._m_archive_pending = metrics.ARCHIVE_PENDING.labels(platform=platform)
        self._m_archive_lag = metrics.ARCHIVE_LAG_SECONDS.labels(platform=platform)

    # --- buffered writes (never await) -----------------------------------------
    def add_fact(self, fact: Sequence[Any]) -> None:
        if writes_anything(fact):  # the others never leave the event path
            self._push(tuple(fact))

    def put_ticket(self, ticket_id: str, record: Record) -> None:
        self._push(("put_ticket", (ticket_id, dict(record))))

    def put_call(self, call_id: str, record: Record) -> None:
        self._push(("put_call", (call_id, dict(record))))

    def put_leg(self, call_id: str, leg_id: str, record: Record) -> None:
        self._push(("put_leg", (call_id, leg_id, dict(record))))

    def end_call(self, call_id: str, record: Record, leg_ids: Iterable[str] = ()) -> None:
        self._push(("end_call", (call_id, dict(record), list(leg_ids))))

    def append_timeline(self, ticket_id: str, kind: str, timestamp: str | float | int,
                        record: Record | None = None) -> None:
        self._push(("append_timeline",
                    (ticket_id, kind, timestamp, None if record is None else dict(record))))

    def update_op(self, op_id: str, record: Record) -> None:
        self._push(("update_op", (op_id, dict(record))))

    def append_monitor(self, seq: int, text: str) -> None:
        self._push(("append_monitor", (seq, text)))

    def _push(self, message: Any) -> None:
        pending = self._pending
        if not pending:
            self._first_at = perf_counter()
            self._wakeup.set()
        elif len(pending) >= self.max_pending:
            self._drop_oldest()
        pending.append(message)

    def _drop_oldest(self) -> None:
        oldest = self._pending.popleft()
        if oldest[0] == FLUSH:  # a flush request is not a write: answer it, keep going
            self._answer_flush(oldest[1][0], False)
            return
        self.dropped_here += 1
        self._m_dropped.inc()
        if self.dropped_here == 1 or self.dropped_here % 10_000 == 0:
            self.log.error("store_buffer_full", dropped=self.dropped_here,
                           max=self.max_pending, policy="drop-oldest", where="service")

    # --- counters (the writer's, as last reported, plus ours) ---------------------
    @property
    def dropped(self) -> int:
        return self.dropped_here + self._total("dropped")

    @property
    def written(self) -> int:
        return self._total("written")

    @property
    def rejected(self) -> int:
        return self._total("rejected") + self._total("refused")

    @property
    def pending(self) -> int:
        return len(self._pending) + int(self.writer_stats.get("pending", 0))

    def _total(self, name: str) -> int:
        """A writer counter over every writer this store started (each restarts at 0)."""
        return self._retired.get(name, 0) + int(self.writer_stats.get(name, 0))

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._supervise(), name="store-writer"),
                           asyncio.create_task(self._send_forever(), name="store-frames")]

    async def flush(self, within: float | None = None) -> bool:
        """Wait until every write buffered so far is in Redis. False if `within` ran out."""
        self.start()
        token = next(self._tokens)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._flushes[token] = done
        if not self._pending:  # a request is not a write: it never pushes one out
            self._first_at = perf_counter()
            self._wakeup.set()
        self._pending.append((FLUSH, (token,)))
        try:
            return await asyncio.wait_for(asyncio.shield(done), within)
        except TimeoutError:
            return False
        finally:
            self._flushes.pop(token, None)

    async def close(self, within: float = 5.0) -> None:
        """Flush what we can (bounded by `within`), stop the writer, close the client."""
        if self._tasks and not await self.flush(within):
            self.log.error("store_close_unflushed", pending=self.pending)
        self._closing = True
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()  # end of input: the writer flushes and exits
            try:
                await asyncio.wait_for(proc.wait(), within)
            except TimeoutError:
                proc.kill()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.redis.aclose()

    # --- the writer process ---------------------------------------------------------
    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "telephony.store_writer", "--platform", self.platform,
                   "--redis-url", self.url, "--max-buffer", str(self.writer_max_buffer)]
        return command + (["--lag-log", self.lag_log] if self.lag_log else [])

    async def _supervise(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT,
                                                          env.get("PYTHONPATH"))))
        env.pop(ARCHIVE_DSN_ENV, None)
        if self.archive_dsn:
            env[ARCHIVE_DSN_ENV] = self.archive_dsn
        while not self._closing:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._command(), stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, env=env, limit=_REPLY_LIMIT)
            except OSError as exc:
                self.log.error("store_writer_not_started", error=repr(exc))
                await asyncio.sleep(self.restart_delay)
                continue
            self._proc = proc
            self._writer_up.set()
            self.log.info("store_writer_started", pid=proc.pid)
            assert proc.stdout is not None
            try:
                while line := await proc.stdout.readline():
                    self._on_reply(line)
            except Exception as exc:  # an unreadable reply stream: start afresh
                self.log.error("store_writer_reply_failed", error=repr(exc)[:200])
                proc.kill()
            returncode = await proc.wait()
            self._proc = None
            self._writer_up.clear()
            self._retire_writer()
            if self._closing:
                return
            self.restarts += 1
            self._m_restarts.inc()
            self.log.error("store_writer_exited", returncode=returncode,
                           restarts=self.restarts)
            await asyncio.sleep(self.restart_delay)

    def _retire_writer(self) -> None:
        """Keep an exited writer's counters; answer the flushes it can no longer answer."""
        if self.writer_stats.get("pending"):
            self.log.error("store_writer_lost_writes", at_most=self.writer_stats["pending"])
        for name, value in self.writer_stats.items():
            if name not in LEVEL_FIELDS:  # a level is not a count (what it held is lost)
                self._retired[name] = self._retired.get(name, 0) + value
        self.writer_stats, self._counted = {}, {}
        for token in list(self._flushes):
            self._answer_flush(token, False)

    def _on_reply(self, line: bytes) -> None:
        reply = read_reply(line)
        if reply is None:
            self.log.warning("store_writer_stray_output", line=line[:200].decode(errors="replace"))
            return
        for lag in reply.pop("lags", ()):
            self._m_lag.observe(lag)
        self.writer_stats = {name: int(reply.get(name, 0)) for name in STAT_FIELDS}
        self._count("dropped", self._m_dropped)
        self._count("flush_errors", self._m_errors)
        self._count("archived", self._m_archived)
        self._count("archive_errors", self._m_archive_errors)
        self._m_archive_pending.set(self.writer_stats.get("archive_pending", 0))
        self._m_archive_lag.set(self.writer_stats.get("archive_lag_ms", 0) / 1000)
        self._m_depth.set(self.pending)
        if reply["type"] == "flushed":
            self._answer_flush(reply.get("token"), True)

    def _count(self, name: str, counter: Any) -> None:
        value = self.writer_stats.get(name, 0)
        if value > self._counted.get(name, 0):
            counter.inc(value - self._counted.get(name, 0))
        self._counted[name] = value

    def _answer_flush(self, token: Any, done: bool) -> None:
        future = self._flushes.get(token)
        if future is not None and not future.done():
            future.set_result(done)

    async def _send_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            if len(self._pending) < 5_000:
                await asyncio.sleep(self.frame_delay)  # let the frame fill
            await self._writer_up.wait()
            proc = self._proc
            if proc is None or proc.stdin is None:
                continue
            self._wakeup.clear()  # before taking: a write from now on wakes us again
            messages, first_at = list(self._pending), self._first_at
            self._pending.clear()
            try:
                frame = encode_frame(first_at, messages)
            except Exception as exc:  # a value pickle cannot carry: send the rest
                frame = self._encode_each(first_at, messages, exc)
            try:
                proc.stdin.write(frame)
                await proc.stdin.drain()  # the pipe is full: the writer is behind, wait
            except (ConnectionError, OSError) as exc:
                # The writer died with this frame; the supervisor starts a new one.
                self.dropped_here += len(messages)
                self._m_dropped.inc(len(messages))
                self.log.error("store_frame_lost", messages=len(messages), error=repr(exc))

    def _encode_each(self, first_at: float, messages: list[Any], exc: Exception) -> bytes:
        good = []
        for message in messages:
            try:
                encode_frame(first_at, [message])
            except Exception:
                self.dropped_here += 1
                self._m_dropped.inc()
                continue
            good.append(message)
        self.log.error("store_messages_unencodable", dropped=len(messages) - len(good),
                       error=repr(exc)[:200])
        return encode_frame(first_at, good)
