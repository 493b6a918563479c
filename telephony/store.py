"""Redis state for one platform: tickets, live calls and legs, timelines, operations.

Records are plain mappings (field -> str/int/float/bool, or JSON-able
lists/dicts), so the store does not depend on the tracker's classes.

Writes from the event path (`put_*`, `end_call`, `append_timeline`,
`update_op`) are synchronous, never await, and go into a bounded write-behind
buffer. A background task drains it in batches, one EVAL each. A slow or stopped Redis
therefore never stalls AMI reading. When the buffer is full the OLDEST write is
dropped (logged, counted in `hotline_store_buffer_dropped_total`), because:

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
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from telephony import metrics
from telephony.logging import get_logger

Record = Mapping[str, Any]
# One buffered write: (enqueued at, command name, args...).
_Write = tuple[Any, ...]


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
        elif kind is bool:
            fields[key] = "1" if value else "0"
        elif isinstance(value, int | float | str):
            fields[key] = str(value)
        else:
            fields[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return fields


# Applies one flushed batch server-side. ARGV[1]: timeline maxlen; ARGV[2]: the
# batch as JSON, a list of [command, key, payload], payload a field map or one
# string. JSON because json.dumps runs in C: packing thousands of redis-py
# commands costs far more than the writes. Keys travel in ARGV, so this suits
# a single Redis (the lab, or a primary with replicas), not Redis Cluster.
_APPLY_BATCH = """
local maxlen = ARGV[1]
local rejected, first_error = 0, ''
for _, write in ipairs(cjson.decode(ARGV[2])) do
  local command, key, payload = write[1], write[2], write[3]
  local args = {}
  if type(payload) == 'table' then
    for field, value in pairs(payload) do
      args[#args + 1] = field
      args[#args + 1] = value
    end
  else
    args[1] = payload
  end
  local reply
  if command == 'xadd' then
    reply = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(args))
  else
    reply = redis.pcall(command, key, unpack(args))
  end
  if type(reply) == 'table' and reply.err then
    rejected = rejected + 1
    if first_error == '' then first_error = command .. ' ' .. key .. ': ' .. reply.err end
  end
end
return {rejected, first_error}
"""


def batch_json(batch: Iterable[_Write]) -> str:
    """The batch as the JSON _APPLY_BATCH reads: [[command, key, payload], ...]."""
    return json.dumps([write[1:] for write in batch], ensure_ascii=False,
                      separators=(",", ":"))


class RedisStore:
    """Write-behind Redis persistence for one platform."""

    def __init__(
        self,
        client: redis.Redis,
        platform: str,
        *,
        max_buffer: int = 100_000,
        batch_size: int = 1_000,
        retry_delay: float = 0.5,
        timeline_maxlen: int = 10_000,
        ended_ttl: int = 7 * 24 * 3600,
        lag_sink: Callable[[list[float]], None] | None = None,
    ):
        self.redis = client
        self.platform = platform
        self.keys = Keys(platform)
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.retry_delay = retry_delay
        self.timeline_maxlen = timeline_maxlen
        self.ended_ttl = ended_ttl
        self.dropped = 0
        self.written = 0
        self.rejected = 0  # writes Redis refused (bad type...), logged and skipped
        self._lag_sink = lag_sink  # gets every write's lag; for benchmarks
        self._buffer: deque[_Write] = deque()
        self._inflight = 0
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self.log = get_logger("telephony.store", platform=platform)
        self._m_dropped = metrics.STORE_BUFFER_DROPPED.labels(platform=platform)
        self._m_depth = metrics.STORE_BUFFER_DEPTH.labels(platform=platform)
        self._m_lag = metrics.STORE_WRITE_LAG.labels(platform=platform)
        self._m_errors = metrics.STORE_FLUSH_ERRORS.labels(platform=platform)

    @classmethod
    def from_url(cls, url: str, platform: str, **kwargs: Any) -> RedisStore:
        # A socket timeout turns a hung Redis into an error the flusher retries.
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )
        return cls(client, platform, **kwargs)

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
            self.log.error("store_close_unflushed", pending=len(self._buffer))
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self.redis.aclose()

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._inflight

    # --- buffered writes (never await) -----------------------------------------
    def put_ticket(self, ticket_id: str, record: Record) -> None:
        self._enqueue("hset", self.keys.ticket(ticket_id), encode_record(record))

    def put_call(self, call_id: str, record: Record) -> None:
        """Upsert a live call and list it among live calls (for restart)."""
        self._enqueue("hset", self.keys.call(call_id), encode_record(record))
        self._enqueue("sadd", self.keys.live_calls(), call_id)

    def put_leg(self, call_id: str, leg_id: str, record: Record) -> None:
        self._enqueue("hset", self.keys.leg(leg_id), encode_record(record))
        self._enqueue("sadd", self.keys.call_legs(call_id), leg_id)

    def end_call(self, call_id: str, record: Record, leg_ids: Iterable[str] = ()) -> None:
        """Record the call's final state, drop it from live calls, let it expire later."""
        self._enqueue("hset", self.keys.call(call_id), encode_record(record))
        self._enqueue("srem", self.keys.live_calls(), call_id)
        for key in (self.keys.call(call_id), self.keys.call_legs(call_id),
                    *(self.keys.leg(leg) for leg in leg_ids)):
            self._enqueue("expire", key, str(self.ended_ttl))

    def append_timeline(
        self, ticket_id: str, kind: str, timestamp: str | float | int, record: Record | None = None
    ) -> None:
        """Add one step to the ticket's timeline; `timestamp` is Asterisk's µs Timestamp.

        Pass the Timestamp header as received (a string such as "1732848000.123456")
        to keep its microseconds exact.
        """
        fields = {"kind": kind, "ts": str(timestamp), **encode_record(record or {})}
        self._enqueue("xadd", self.keys.timeline(ticket_id), fields)

    def update_op(self, op_id: str, record: Record) -> None:
        self._enqueue("hset", self.keys.op(op_id), encode_record(record))

    def _enqueue(self, command: str, *args: Any) -> None:
        if command == "hset" and not args[1]:
            return  # HSET with no fields is a Redis error; nothing to write anyway
        if len(self._buffer) >= self.max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            self._m_dropped.inc()
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                self.log.error("store_buffer_full", dropped=self.dropped, max=self.max_buffer,
                               policy="drop-oldest")
        self._buffer.append((perf_counter(), command, *args))
        if not self._wakeup.is_set():
            self._wakeup.set()

    # --- the flusher ---------------------------------------------------------
    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._buffer:
                batch = [self._buffer.popleft()
                         for _ in range(min(self.batch_size, len(self._buffer)))]
                self._inflight = len(batch)
                try:
                    await self._write(batch)
                except (ConnectionError, TimeoutError, RedisConnectionError, RedisTimeoutError,
                        OSError) as exc:
                    self._requeue(batch)
                    self._m_errors.inc()
                    self.log.warning("store_flush_failed", error=repr(exc), batch=len(batch),
                                     pending=len(self._buffer))
                    await asyncio.sleep(self.retry_delay)
                except Exception as exc:  # a batch Redis can never take: do not loop on it
                    self.rejected += len(batch)
                    self.log.exception("store_batch_rejected", error=repr(exc), batch=len(batch))
                finally:
                    self._inflight = 0
                    self._m_depth.set(len(self._buffer))

    async def _write(self, batch: list[_Write]) -> None:
        # One EVAL per batch instead of one redis-py command per write: that is
        # what makes tens of thousands of events/s possible from one process.
        # Not atomic across retries: a batch retried after a connection failure
        # may apply twice (at least once); harmless for hashes and sets, and a
        # timeline reader can drop duplicate entries.
        rejected, first_error = await self.redis.eval(
            _APPLY_BATCH, 0, self.timeline_maxlen, batch_json(batch)
        )
        if rejected:
            # A write Redis refuses (e.g. WRONGTYPE) is skipped, not retried:
            # retrying would fail forever and block every later write.
            self.rejected += int(rejected)
            self.log.error("store_write_rejected", count=int(rejected), error=str(first_error))
        now = time.perf_counter()
        self.written += len(batch)
        self._m_lag.observe(now - batch[0][0])  # the oldest write in the batch
        if self._lag_sink is not None:
            self._lag_sink([now - write[0] for write in batch])

    def _requeue(self, batch: list[_Write]) -> None:
        # Back to the front, still bounded: the oldest writes go first if full.
        room = self.max_buffer - len(self._buffer)
        keep = batch[-room:] if room > 0 else []
        lost = len(batch) - len(keep)
        if lost:
            self.dropped += lost
            self._m_dropped.inc(lost)
        self._buffer.extendleft(reversed(keep))

    async def _drained(self) -> None:
        # Polling is fine here: flush() is for shutdown and tests, not the event path.
        while self._buffer or self._inflight:
            self._wakeup.set()
            await asyncio.sleep(0.005)

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
