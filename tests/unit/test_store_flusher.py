"""RedisStore's flusher against a scripted connection: pipelining, order, retries, lag."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from telephony.store import RedisStore


class ScriptedConnection:
    """Stands in for the flusher's redis-py connection; replies when the test says so."""

    def __init__(self) -> None:
        self.sent: list[list[list[Any]]] = []  # each EVAL's batch, decoded
        self.replies: asyncio.Queue[Any] = asyncio.Queue()
        self.unanswered = 0
        self.most_unanswered = 0
        self.disconnects = 0

    def pack_command(self, *args: Any) -> tuple[Any, ...]:
        return args

    async def send_packed_command(self, packed: tuple[Any, ...], check_health: bool = True):
        assert packed[0] == "EVAL"
        self.sent.append(json.loads(packed[4]))
        self.unanswered += 1
        self.most_unanswered = max(self.most_unanswered, self.unanswered)

    async def read_response(self) -> Any:
        reply = await self.replies.get()
        self.unanswered -= 1
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def disconnect(self, nowait: bool = False) -> None:
        self.disconnects += 1
        self.unanswered = 0

    def answer(self, count: int = 1) -> None:
        for _ in range(count):
            self.replies.put_nowait([0, ""])


@pytest.fixture
async def rig():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    lags: list[float] = []
    store = RedisStore(client, "unit-flush", batch_size=2, pipeline_depth=2, retry_delay=0.01,
                       lag_sink=lags.extend)
    conn = ScriptedConnection()
    store._conn = conn
    store.start()
    yield store, conn, lags
    assert store._flusher is not None
    store._flusher.cancel()
    await asyncio.gather(store._flusher, return_exceptions=True)
    await client.aclose()


async def until(condition, within: float = 2.0) -> None:
    """Let the flusher run until `condition()` holds (fails the test after `within` s)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if condition():
            return
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def steps(sent: list[list[list[Any]]]) -> list[str]:
    return [write[3] for batch in sent for write in batch]


async def test_batches_are_pipelined_up_to_the_depth_and_sent_in_order(rig):
    store, conn, lags = rig
    for n in range(7):
        store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")
    await until(lambda: len(conn.sent) == 2)
    await asyncio.sleep(0.02)
    assert len(conn.sent) == 2  # no third batch before the first reply
    assert store.pending == 7
    conn.answer(4)
    await until(lambda: store.pending == 0)

    assert conn.most_unanswered == 2
    assert [len(batch) for batch in conn.sent] == [2, 2, 2, 1]
    assert steps(conn.sent) == [f"s{n}" for n in range(7)]
    assert store.written == 7 and len(lags) == 7 and min(lags) >= 0


async def two_batches_in_flight(store, conn) -> None:
    """Steps s0..s3 appended; both batches (of two) sent, neither answered yet."""
    for n in range(4):
        store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")
    await until(lambda: len(conn.sent) == 2)


async def test_a_lost_connection_sends_the_unanswered_batches_again_in_order(rig):
    store, conn, _ = rig
    await two_batches_in_flight(store, conn)
    conn.replies.put_nowait(RedisConnectionError("connection reset"))
    await until(lambda: len(conn.sent) == 4)
    conn.answer(2)
    await until(lambda: store.pending == 0)

    assert conn.disconnects == 1  # replies to the lost batches are never read as new ones
    assert steps(conn.sent) == ["s0", "s1", "s2", "s3"] * 2  # at least once, order kept
    assert store.written == 4 and store.dropped == 0


async def test_a_batch_redis_refuses_is_counted_and_the_next_one_still_goes(rig):
    store, conn, _ = rig
    await two_batches_in_flight(store, conn)
    conn.replies.put_nowait(ResponseError("ERR script failed"))
    conn.replies.put_nowait([1, "xadd hl:unit-flush:timeline:T-1: WRONGTYPE"])
    await until(lambda: store.pending == 0)

    assert store.rejected == 3  # the whole first batch, one write of the second
    assert store.written == 2
    assert len(conn.sent) == 2  # neither is retried


async def test_unanswered_batches_that_no_longer_fit_are_dropped_oldest_first(rig):
    store, conn, _ = rig
    store.max_buffer = 3
    for n in range(4):
        store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")  # full at s3: s0 dropped
    await until(lambda: len(conn.sent) == 2)  # [s1, s2] and [s3] in flight
    for n in range(4, 7):
        store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")  # fills the buffer again
    conn.replies.put_nowait(RedisConnectionError("connection reset"))
    await until(lambda: len(conn.sent) == 4)
    conn.answer(2)
    await until(lambda: store.pending == 0)

    assert store.dropped == 4  # s0, then s1..s3: older than every buffered write
    assert steps(conn.sent) == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert store.written == 3


async def test_an_unreadable_reply_skips_that_batch_and_the_flusher_goes_on(rig):
    store, conn, _ = rig
    for n in range(3):
        store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")
    await until(lambda: len(conn.sent) == 2)
    conn.replies.put_nowait("not a [rejected, error] pair")
    await until(lambda: len(conn.sent) == 3)  # the second batch goes again on a fresh link
    conn.answer(1)
    await until(lambda: store.pending == 0)

    assert store.rejected == 2 and store.written == 1
    assert conn.disconnects == 1
    assert steps(conn.sent) == ["s0", "s1", "s2", "s2"]
    assert store._flusher is not None and not store._flusher.done()


async def test_a_write_json_cannot_carry_is_dropped_alone_and_its_batch_still_goes(rig):
    store, conn, lags = rig
    store.append_timeline("T-1", "s0", "1.000000")
    store.append_timeline("T-1", "s1", "1.000001", {"summary": "bad \ud800 half"})
    store.append_timeline("T-1", "s2", "1.000002")
    await until(lambda: len(conn.sent) == 2)
    conn.answer(2)
    await until(lambda: store.pending == 0)

    assert steps(conn.sent) == ["s0", "s2"]  # s1's lone surrogate is not UTF-8
    assert store.rejected == 1 and store.written == 2 and len(lags) == 2


async def test_a_burst_after_a_quiet_spell_goes_out_as_one_batch():
    """Writes enqueued one loop turn apart (an AMI burst, handled with a yield per
    event) are gathered for `gather_delay` and sent in one EVAL, not one each."""
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    store = RedisStore(client, "unit-gather", batch_size=100, gather_delay=0.02)
    conn = ScriptedConnection()
    store._conn = conn
    store.start()
    await asyncio.sleep(0.001)  # the flusher is idle, waiting for a write
    try:
        for n in range(5):
            store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")
            await asyncio.sleep(0)  # the pump yields between events
        await until(lambda: len(conn.sent) == 1)
        conn.answer()
        await until(lambda: store.pending == 0)
        assert [len(batch) for batch in conn.sent] == [5]

        store.gather_delay = 0  # without gathering, the first write goes alone
        for n in range(5, 8):
            store.append_timeline("T-1", f"s{n}", f"1.{n:06d}")
            await asyncio.sleep(0)
        await until(lambda: len(conn.sent) >= 2)
        conn.answer(3)
        await until(lambda: store.pending == 0)
        assert len(conn.sent[1]) < 3
        assert steps(conn.sent) == [f"s{n}" for n in range(8)]
    finally:
        assert store._flusher is not None
        store._flusher.cancel()
        await asyncio.gather(store._flusher, return_exceptions=True)
        await client.aclose()
