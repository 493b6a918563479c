"""Redis state for one platform: tickets, live calls and legs, timelines, operations.

Records are plain mappings (field -> str/int/float/bool, or JSON-able
lists/dicts), so the store does not depend on the tracker's classes.

Writes from the event path (`put_*`, `end_call`, `append_timeline`,
`update_op`) are synchronous, never await, and go into a bounded write-behind
buffer. A background task drains it in batches, one EVAL each, with up to
`pipeline_depth` batches in flight on its own connection (Redis applies one
while the next is encoded; one connection keeps them in order). A slow or
stopped Redis therefore never stalls AMI reading. A hash written again while
its previous HSET is still buffered is merged into one HSET (the fields Redis
would hold after both); timeline steps are never merged. When the buffer is
full the OLDEST write is dropped (logged, counted in
`hotline_store_buffer_dropped_total`), because:

- callers write whole records (HSET of every known field), so a newer write
  of the same key supersedes the dropped older one;
- restart recovery needs the freshest state, not the oldest;
- Asterisk is the truth for live channels and reconciliation fills the gap,
  whereas rejecting new writes would keep stale state and lose the newest.

Operation claims (`claim_op`) are the exception: they are awaited and atomic
(`SET NX` on the idempotency key), because a second key press must see the
first one at once.

Key layout (`{p}` is the platform, e.g. `12345`):

    hl:{p}:ticket:{ticket_id}          hash    ticket record
    hl:{p}:timeline:{ticket_id}        stream  one entry per step, `ts` = Asterisk µs Timestamp
    hl:{p}:call:{call_id}              hash    call record
    hl:{p}:call:{call_id}:legs         set     leg ids of the call
    hl:{p}:leg:{leg_id}                hash    leg record (leg id = Asterisk Uniqueid)
    hl:{p}:calls:live                  set     ids of calls not yet ended
    hl:{p}:op:{op_id}                  hash    operation record
    hl:{p}:opkey:{idempotency_key}     string  op id owning that key
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

import orjson
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from telephony import metrics
from telephony.fact_writes import persist_fact
from telephony.logging import get_logger

Record = Mapping[str, Any]
# One buffered write as _APPLY_BATCH reads it: (command, key, ...). An HSET is a
# list, so a later HSET of the same key can void it in place (command None: merged,
# skipped); every other write is a tuple of strings, which the garbage collector
# stops tracking after one look, so a backlog of them never lengthens a full collection.
_Write = Sequence[Any]
_HashWrite = list[Any]


@dataclass(frozen=True)
class OpClaim:
    """The result of claiming an idempotency key: whose operation it is."""

    op_id: str
    created: bool  # False: the key was already claimed by `op_id`


class Keys:
    """Redis key names for one platform namespace."""

    def __init__(self, platform: str, prefix: str = "hl"):
        self.ns = f"{prefix}:{platform}"

    def ticket(self, ticket_id: str) -> str:
        return f"{self.ns}:ticket:{ticket_id}"

    def timeline(self, ticket_id: str) -> str:
        return f"{self.ns}:timeline:{ticket_id}"

    def call(self, call_id: str) -> str:
        return f"{self.ns}:call:{call_id}"

    def call_legs(self, call_id: str) -> str:
        return f"{self.ns}:call:{call_id}:legs"

    def leg(self, leg_id: str) -> str:
        return f"{self.ns}:leg:{leg_id}"

    def live_calls(self) -> str:
        return f"{self.ns}:calls:live"

    def op(self, op_id: str) -> str:
        return f"{self.ns}:op:{op_id}"

    def op_key(self, idempotency_key: str) -> str:
        return f"{self.ns}:opkey:{idempotency_key}"

    def archive_pending(self) -> str:
        """Ended tickets waiting for the archive: a sorted set scored by end time."""
        return f"{self.ns}:archive:pending"

    def monitor(self) -> str:
        """The monitor feed's messages, entry id `<seq>-0` (telephony.monitor)."""
        return f"{self.ns}:monitor"


def encode_record(record: Record) -> dict[str, str]:
    """Flatten a record into string hash fields; None is left out, containers become JSON.

    Strings on the client side, so no number ever passes through Lua's doubles.
    """
    fields: dict[str, str] = {}
    for key, value in record.items():
        kind = type(value)
        if kind is str:
            fields[key] = value
        elif value is None:
            continue
        else:
            fields[key] = _encode_value(value, kind)
    return fields


# Built once: json.dumps with options builds a new encoder on every call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _encode_value(value: Any, kind: type) -> str:
    if kind is bool:
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        return str(value)
    return _to_json(value)


_STEP_FIELDS = frozenset(("kind", "ts"))


def timeline_write(key: str, kind: str, ts: str, record: Record | None) -> tuple[Any, ...]:
    """One XADD as the batch script reads it: ("xadd", key, field, value, ...).

    Built flat in one pass (no intermediate dict): this runs for every domain
    event. The step's own `kind` and `ts` win over same-named record fields.
    """
    write: list[Any] = ["xadd", key, "kind", kind, "ts", ts]
    if record:
        append = write.append
        for field, value in record.items():
            if field in _STEP_FIELDS:
                continue
            kind_ = type(value)
            if kind_ is not str:
                if value is None:
                    continue
                value = _encode_value(value, kind_)
            append(field)
            append(value)
    return tuple(write)


# Applies one flushed batch server-side. ARGV[1]: timeline maxlen; ARGV[2]: the
# batch as JSON, a list of writes:
#   ["xadd", key, field, value, ...]    XADD key MAXLEN ~ maxlen * field value ...
#   ["hset", key, {field: value, ...}]  HSET key field value ...
#   ["xaddid", key, maxlen, id, field, value, ...]  XADD with the caller's own id
#   [command, key, argument, ...]       e.g. SADD, SREM, EXPIRE, ZADD
# JSON because it is encoded in C (orjson: 0.3 to 0.9 µs a write, against 2 to 6
# for the standard library's encoder, which was a third of the writer process's
# CPU; bench/bench_store_encoding.py): packing thousands of redis-py commands
# costs far more than the writes, and flat arrays decode and unpack cheaply in
# Lua. Keys travel in ARGV, so this suits a single Redis (the lab, or a primary
# with replicas), not Redis Cluster.
_APPLY_BATCH = """
local maxlen = ARGV[1]
local rejected, first_error = 0, ''
for _, write in ipairs(cjson.decode(ARGV[2])) do
  local command, key = write[1], write[2]
  local reply
  if command == 'xadd' then
    reply = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(write, 3))
  elseif command == 'xaddid' then
    reply = redis.pcall('XADD', key, 'MAXLEN', '~', write[3], write[4], unpack(write, 5))
  elseif command == 'hset' then
    local args = {}
    for field, value in pairs(write[3]) do
      args[#args + 1] = field
      args[#args + 1] = value
    end
    reply = redis.pcall('HSET', key, unpack(args))
  else
    reply = redis.pcall(command, key, unpack(write, 3))
  end
  if type(reply) == 'table' and reply.err then
    rejected = rejected + 1
    if first_error == '' then first_error = command .. ' ' .. key .. ': ' .. reply.err end
  end
end
return {rejected, first_error}
"""


def batch_json(batch: Iterable[_Write]) -> bytes:
    """The batch as the JSON _APPLY_BATCH reads (UTF-8; every value is a string)."""
    return orjson.dumps(batch if isinstance(batch, list) else list(batch))


def redis_client(url: str) -> redis.Redis:
    # A socket timeout turns a hung Redis into an error the flusher retries.
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5,
                                socket_connect_timeout=5)


class RedisReads:
    """The awaited side of one platform's store: operation claims and reads, straight to Redis.

    Shared by the in-process RedisStore and the service's ProcessStore, whose
    writes go through a writer process instead (telephony.store_process).
    """

    def __init__(self, client: redis.Redis, platform: str) -> None:
        self.redis = client
        self.platform = platform
        self.keys = Keys(platform)

    # --- awaited, atomic ---------------------------------------------------------
    async def claim_op(self, op_id: str, idempotency_key: str, record: Record,
                       key_ttl: int = 24 * 3600) -> OpClaim:
        """Create operation `op_id` unless `idempotency_key` already belongs to one."""
        key = self.keys.op_key(idempotency_key)
        if await self.redis.set(key, op_id, nx=True, ex=key_ttl):
            fields = {"op_id": op_id, "idempotency_key": idempotency_key,
                      **encode_record(record)}
            await self.redis.hset(self.keys.op(op_id), mapping=dict(fields))  # type: ignore[arg-type]
            return OpClaim(op_id, created=True)
        owner = await self.redis.get(key)
        return OpClaim(str(owner), created=False)

    # --- reads (direct; buffered writes become visible after they flush) ---------
    async def get_ticket(self, ticket_id: str) -> dict[str, str] | None:
        return await self._hash(self.keys.ticket(ticket_id))

    async def get_call(self, call_id: str) -> dict[str, str] | None:
        return await self._hash(self.keys.call(call_id))

    async def get_leg(self, leg_id: str) -> dict[str, str] | None:
        return await self._hash(self.keys.leg(leg_id))

    async def get_op(self, op_id: str) -> dict[str, str] | None:
        return await self._hash(self.keys.op(op_id))

    async def find_op_by_key(self, idempotency_key: str) -> dict[str, str] | None:
        op_id = await self.redis.get(self.keys.op_key(idempotency_key))
        return await self.get_op(str(op_id)) if op_id else None

    async def timeline(
        self, ticket_id: str, start: str = "-", count: int = 1000
    ) -> list[tuple[str, dict[str, str]]]:
        """Timeline entries from stream id `start` on (inclusive), oldest first."""
        # The client decodes responses (decode_responses=True): str, not bytes.
        entries = await self.redis.xrange(self.keys.timeline(ticket_id), min=start, count=count)
        return cast(list[tuple[str, dict[str, str]]], entries)

    async def monitor_after(self, seq: int, count: int) -> list[tuple[int, str]]:
        """Up to `count` monitor messages after `seq`, oldest first: (seq, JSON text)."""
        entries = cast(list[tuple[str, dict[str, str]]], await self.redis.xrange(
            self.keys.monitor(), min=f"{seq + 1}-0", count=count))
        return [(int(entry_id.partition("-")[0]), fields.get("m", "{}"))
                for entry_id, fields in entries]

    async def monitor_last_seq(self) -> int:
        """The newest monitor message's seq in Redis (0 when there is none)."""
        entries = cast(list[tuple[str, dict[str, str]]],
                       await self.redis.xrevrange(self.keys.monitor(), count=1))
        return int(entries[0][0].partition("-")[0]) if entries else 0

    async def live_call_ids(self) -> set[str]:
        return {str(m) for m in await self.redis.smembers(self.keys.live_calls())}

    async def live_calls(self) -> dict[str, dict[str, Any]]:
        """Every live call with its legs: {call_id: {**call, "legs": {leg_id: leg}}}."""
        call_ids = sorted(await self.live_call_ids())
        pipe = self.redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hgetall(self.keys.call(call_id))
            pipe.smembers(self.keys.call_legs(call_id))
        replies = await pipe.execute() if call_ids else []
        records = replies[0::2]
        leg_ids = [sorted(ids) for ids in replies[1::2]]
        pipe = self.redis.pipeline(transaction=False)
        for ids in leg_ids:
            for leg_id in ids:
                pipe.hgetall(self.keys.leg(leg_id))
        legs = iter(await pipe.execute() if any(leg_ids) else [])
        return {
            call_id: {**record, "legs": {leg_id: next(legs) for leg_id in ids}}
            for call_id, record, ids in zip(call_ids, records, leg_ids, strict=True)
        }

    async def _hash(self, key: str) -> dict[str, str] | None:
        record = cast(dict[str, str], await self.redis.hgetall(key))
        return record or None


class RedisStore(RedisReads):
    """Write-behind Redis persistence for one platform."""

    def __init__(
        self,
        client: redis.Redis,
        platform: str,
        *,
        max_buffer: int = 100_000,
        batch_size: int = 1_000,
        pipeline_depth: int = 2,
        retry_delay: float = 0.5,
        gather_delay: float = 0.005,
        timeline_maxlen: int = 10_000,
        monitor_maxlen: int = 100_000,
        archive: bool = False,
        ended_ttl: int = 7 * 24 * 3600,
        lag_sink: Callable[[list[float]], None] | None = None,
    ):
        super().__init__(client, platform)
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.pipeline_depth = pipeline_depth  # batches sent and not yet answered, at most
        self.retry_delay = retry_delay
        # After a quiet spell, wait this long before sending: one call's burst of
        # AMI events (dozens at a transfer) then goes out as one EVAL, not one
        # round trip per event on the loop that also serves key presses.
        self.gather_delay = gather_delay
        self.timeline_maxlen = timeline_maxlen
        self.monitor_maxlen = monitor_maxlen
        # Ended tickets are marked for the archiver (telephony.archive.writer) only
        # when one runs: otherwise nothing would ever take them off the set.
        self.archive = archive
        self.ended_ttl = ended_ttl
        self.dropped = 0
        self.written = 0
        self.coalesced = 0  # hash writes merged into a later write of the same key
        self.rejected = 0  # writes Redis refused (bad type...), logged and skipped
        self.flush_errors = 0  # flushes that failed and were retried
        # When a list, each batch's lag (its oldest write) is appended: the writer
        # process forwards them to the service's histogram.
        self.batch_lags: list[float] | None = None
        self._lag_sink = lag_sink  # gets every write's lag; for benchmarks
        # When set, writes are stamped with this time instead of now: the writer
        # process sets when its frame of writes left the service, so the lag
        # covers the hop between the processes too.
        self.stamp: float | None = None
        # Writes waiting to be sent, oldest first, and when each was enqueued
        # (two deques in step: the stamp never has to be cut out of the payload).
        self._buffer: deque[_Write] = deque()
        self._stamps: deque[float] = deque()
        # The buffered HSET of each hash key that a newer HSET may still merge into.
        self._open_hashes: dict[str, _HashWrite] = {}
        self._timeline_prefix = f"{self.keys.ns}:timeline:"
        self._inflight = 0
        self._conn: Any = None  # the flusher's own connection (ordered pipelining)
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self.log = get_logger("telephony.store", platform=platform)
        self._m_dropped = metrics.STORE_BUFFER_DROPPED.labels(platform=platform)
        self._m_depth = metrics.STORE_BUFFER_DEPTH.labels(platform=platform)
        self._m_lag = metrics.STORE_WRITE_LAG.labels(platform=platform)
        self._m_errors = metrics.STORE_FLUSH_ERRORS.labels(platform=platform)

    @classmethod
    def from_url(cls, url: str, platform: str, **kwargs: Any) -> RedisStore:
        return cls(redis_client(url), platform, **kwargs)

    # --- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_forever(), name="store-flusher")

    async def flush(self, within: float | None = None) -> bool:
        """Wait until every buffered write reached Redis. False if `within` ran out."""
        self.start()
        try:
            await asyncio.wait_for(self._drained(), within)
        except TimeoutError:
            return False
        return True

    async def close(self, within: float = 5.0) -> None:
        """Flush what we can (bounded by `within`), stop the flusher, close the client."""
        if not await self.flush(within):
            self.log.error("store_close_unflushed", pending=self.pending)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._conn is not None:
            await self._conn.disconnect()
            await self.redis.connection_pool.release(self._conn)
            self._conn = None
        await self.redis.aclose()

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._inflight

    # --- buffered writes (never await) -----------------------------------------
    def put_ticket(self, ticket_id: str, record: Record) -> None:
        self._put_hash(self.keys.ticket(ticket_id), encode_record(record))

    def put_call(self, call_id: str, record: Record) -> None:
        """Upsert a live call and list it among live calls (for restart)."""
        self._put_hash(self.keys.call(call_id), encode_record(record))
        self._enqueue(("sadd", self.keys.live_calls(), call_id))

    def put_leg(self, call_id: str, leg_id: str, record: Record) -> None:
        self._put_hash(self.keys.leg(leg_id), encode_record(record))
        self._enqueue(("sadd", self.keys.call_legs(call_id), leg_id))

    def end_call(self, call_id: str, record: Record, leg_ids: Iterable[str] = ()) -> None:
        """Record the call's final state, drop it from live calls, let it expire later."""
        self._put_hash(self.keys.call(call_id), encode_record(record))
        self._enqueue(("srem", self.keys.live_calls(), call_id))
        ttl = str(self.ended_ttl)
        for key in (self.keys.call(call_id), self.keys.call_legs(call_id),
                    *(self.keys.leg(leg) for leg in leg_ids)):
            # A later HSET must not merge into one queued before this EXPIRE:
            # moved behind it, the EXPIRE could find no key yet and do nothing.
            self._open_hashes.pop(key, None)
            self._enqueue(("expire", key, ttl))

    def append_timeline(
        self, ticket_id: str, kind: str, timestamp: str | float | int, record: Record | None = None
    ) -> None:
        """Add one step to the ticket's timeline; `timestamp` is Asterisk's µs Timestamp.

        Pass the Timestamp header as received (a string such as "1732848000.123456")
        to keep its microseconds exact. Every step is its own stream entry, in
        the order appended: timeline steps are never coalesced.
        """
        self._enqueue(timeline_write(self._timeline_prefix + ticket_id, kind,
                                     timestamp if type(timestamp) is str else str(timestamp),
                                     record))

    def update_op(self, op_id: str, record: Record) -> None:
        self._put_hash(self.keys.op(op_id), encode_record(record))

    def ticket_ended(self, ticket_id: str, timestamp: str) -> None:
        """Mark the ticket for the archive, in order after its timeline steps."""
        if self.archive:
            self._enqueue(("zadd", self.keys.archive_pending(), timestamp, ticket_id))

    def append_monitor(self, seq: int, text: str) -> None:
        """One monitor feed message under its own seq, the stream capped near `monitor_maxlen`."""
        self._enqueue(("xaddid", self.keys.monitor(), str(self.monitor_maxlen), f"{seq}-0",
                       "m", text))

    def add_fact(self, fact: Sequence[Any]) -> None:
        """The writes of one domain fact (telephony.fact_writes), buffered here."""
        persist_fact(self, fact)

    def _put_hash(self, key: str, fields: dict[str, str]) -> None:
        """HSET, merged with a still-buffered HSET of the same key if there is one.

        The merged write (older fields updated by the newer ones: what Redis
        would hold after both) takes the newer write's place at the tail, and
        the older one becomes a no-op. So a record updated many times per
        flush costs one write, and dropping the oldest never drops the newest.
        """
        if not fields:
            return  # HSET with no fields is a Redis error; nothing to write anyway
        older = self._open_hashes.get(key)
        if older is not None and older[0] == "hset":
            merged = older[2]
            merged.update(fields)
            older[0] = None  # the flusher skips it; it still counts until popped
            self.coalesced += 1
            fields = merged
        write: _HashWrite = ["hset", key, fields]
        self._open_hashes[key] = write
        self._enqueue(write)

    def _enqueue(self, write: _Write) -> None:
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            self._drop_oldest()
        buffer.append(write)
        stamp = self.stamp
        self._stamps.append(perf_counter() if stamp is None else stamp)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _drop_oldest(self) -> None:
        oldest = self._buffer.popleft()
        self._stamps.popleft()
        if oldest[0] is None:
            return  # a write already merged into a newer one: nothing is lost
        if oldest[0] == "hset" and self._open_hashes.get(oldest[1]) is oldest:
            del self._open_hashes[oldest[1]]
        self.dropped += 1
        self._m_dropped.inc()
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            self.log.error("store_buffer_full", dropped=self.dropped, max=self.max_buffer,
                           policy="drop-oldest")

    # --- the flusher ---------------------------------------------------------
    def _take_batch(self) -> tuple[list[float], list[_Write]]:
        """Up to batch_size writes off the buffer's front, merged-away ones skipped."""
        buffer, stamps, open_hashes = self._buffer, self._stamps, self._open_hashes
        taken = min(self.batch_size, len(buffer))
        writes = [buffer.popleft() for _ in range(taken)]
        times = [stamps.popleft() for _ in range(taken)]
        batch, batch_times = [], []
        for write, stamp in zip(writes, times, strict=True):
            command = write[0]
            if command is None:
                continue
            if command == "hset" and open_hashes.get(write[1]) is write:
                del open_hashes[write[1]]  # sent: a newer HSET is a new write
            batch.append(write)
            batch_times.append(stamp)
        return batch_times, batch

    async def _flush_forever(self) -> None:
        # Up to `pipeline_depth` batches are in flight on one connection: Redis
        # applies batch N while this process encodes batch N+1, and one
        # connection keeps them in order (timeline steps, last HSET wins).
        inflight: deque[tuple[list[float], list[_Write]]] = deque()
        while True:
            if not self._buffer and not inflight:
                self._wakeup.clear()
                await self._wakeup.wait()
                if self.gather_delay and len(self._buffer) < self.batch_size:
                    await asyncio.sleep(self.gather_delay)
                continue
            try:
                while self._buffer and len(inflight) < self.pipeline_depth:
                    times, batch = self._take_batch()
                    payload = self._encode(times, batch)
                    if payload is not None:
                        inflight.append((times, batch))
                        self._inflight += len(batch)
                        await self._send(payload)
                if inflight:
                    await self._receive(inflight)
            except (ConnectionError, TimeoutError, RedisConnectionError, RedisTimeoutError,
                    OSError) as exc:
                retried = sum(len(batch) for _, batch in inflight)
                while inflight:
                    self._requeue(*inflight.pop())  # newest first: oldest ends in front
                self._inflight = 0
                await self._reset_connection()
                self.flush_errors += 1
                self._m_errors.inc()
                self.log.warning("store_flush_failed", error=repr(exc), batch=retried,
                                 pending=len(self._buffer))
                await asyncio.sleep(self.retry_delay)
            except Exception as exc:  # e.g. a reply we cannot read: never stop flushing
                if inflight:  # the oldest batch's reply is the one that failed; skip it
                    self.rejected += len(inflight.popleft()[1])
                while inflight:
                    self._requeue(*inflight.pop())
                self._inflight = 0
                await self._reset_connection()  # the reply stream may be out of step
                self.log.exception("store_batch_rejected", error=repr(exc))
            finally:
                self._m_depth.set(len(self._buffer))

    def _encode(self, times: list[float], batch: list[_Write]) -> bytes | None:
        """The batch's payload; a write JSON cannot carry is dropped alone (in place)."""
        if not batch:
            return None
        try:
            return batch_json(batch)
        except Exception:  # e.g. a lone surrogate: find it, never loop on it or lose the rest
            pass
        kept = [(stamp, write) for stamp, write in zip(times, batch, strict=True)
                if self._encodable(write)]
        times[:] = [stamp for stamp, _ in kept]
        batch[:] = [write for _, write in kept]
        return batch_json(batch) if batch else None

    def _encodable(self, write: _Write) -> bool:
        try:
            batch_json([write])
        except Exception as exc:
            self.rejected += 1
            self.log.error("store_write_rejected", count=1, error=repr(exc)[:200],
                           key=str(write[1])[:200])
            return False
        return True

    async def _send(self, payload: bytes) -> None:
        # One EVAL per batch instead of one redis-py command per write: that is
        # what makes tens of thousands of events/s possible from one process.
        # Not atomic across retries: a batch retried after a connection failure
        # may apply twice (at least once); harmless for hashes and sets, and a
        # timeline reader can drop duplicate entries.
        if self._conn is None:
            self._conn = await self.redis.connection_pool.get_connection()
        conn = self._conn
        await conn.send_packed_command(
            conn.pack_command("EVAL", _APPLY_BATCH, 0, self.timeline_maxlen, payload),
            check_health=False)

    async def _receive(self, inflight: deque[tuple[list[float], list[_Write]]]) -> None:
        """Read the reply to the oldest batch in flight and account for it."""
        try:
            rejected, first_error = await self._conn.read_response()
        except ResponseError as exc:  # a batch Redis can never take: do not loop on it
            times, batch = inflight.popleft()
            self._inflight -= len(batch)
            self.rejected += len(batch)
            self.log.error("store_batch_rejected", error=repr(exc), batch=len(batch))
            return
        times, batch = inflight.popleft()
        self._inflight -= len(batch)
        if rejected:
            # A write Redis refuses (e.g. WRONGTYPE) is skipped, not retried:
            # retrying would fail forever and block every later write.
            self.rejected += int(rejected)
            self.log.error("store_write_rejected", count=int(rejected), error=str(first_error))
        now = perf_counter()
        self.written += len(batch)
        self._m_lag.observe(now - times[0])  # the oldest write in the batch
        if self.batch_lags is not None:
            self.batch_lags.append(now - times[0])
        if self._lag_sink is not None:
            self._lag_sink([now - stamp for stamp in times])

    async def _reset_connection(self) -> None:
        # Replies of the failed batches may still arrive: never read them on a
        # new batch's behalf. The next send reconnects.
        if self._conn is not None:
            await self._conn.disconnect(nowait=True)

    def _requeue(self, times: list[float], batch: list[_Write]) -> None:
        # Back to the front, still bounded: the oldest writes go first if full.
        room = self.max_buffer - len(self._buffer)
        keep = max(0, min(room, len(batch)))
        lost = len(batch) - keep
        if lost:
            self.dropped += lost
            self._m_dropped.inc(lost)
        if keep:
            self._buffer.extendleft(reversed(batch[-keep:]))
            self._stamps.extendleft(reversed(times[-keep:]))

    async def _drained(self) -> None:
        # Polling is fine here: flush() is for shutdown and tests, not the event path.
        while self._buffer or self._inflight:
            self._wakeup.set()
            await asyncio.sleep(0.005)
