"""The service's store (ProcessStore + its writer process) against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from telephony import metrics
from telephony.replay import load_events
from telephony.store import RedisStore
from telephony.store_process import ProcessStore
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


async def dump(url: str) -> dict[str, Any]:
    """Every key of a Redis database with its content; stream entries without their ids."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: dict[str, Any] = {}
    for key in sorted(await client.keys("*")):
        kind = await client.type(key)
        if kind == "hash":
            out[key] = await client.hgetall(key)
        elif kind == "set":
            out[key] = await client.smembers(key)
        elif kind == "stream":
            out[key] = [fields for _, fields in await client.xrange(key)]
        else:
            out[key] = (kind, await client.get(key))
        out[key + " (expires)"] = await client.ttl(key) > 0
    await client.aclose()
    return out


async def wait_for(predicate: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_replayed_calls_leave_the_same_redis_content_as_the_in_process_store(
        redis_server) -> None:
    url = redis_server[0]
    in_process = RedisStore.from_url(url.replace("/0", "/1"), "12345")
    writer = ProcessStore(url, "12345")
    in_process.start()
    writer.start()
    tracker = Tracker()
    facts = 0
    for name in ("lab_blind_transfer_cross_trunk", "lab_conference_three_party",
                 "lab_attended_transfer_complete", "lab_queue_abandon"):
        for event in load_events(FIXTURES / f"{name}.jsonl"):
            for fact in tracker.feed(dict(event)):
                facts += 1
                in_process.add_fact(fact)
                writer.add_fact(fact)
    writer.put_ticket("T-IVR", {"summary": "噪音, 'quoted' | piped\r\nAction: Originate"})
    in_process.put_ticket("T-IVR", {"summary": "噪音, 'quoted' | piped\r\nAction: Originate"})
    assert facts > 100
    assert await writer.flush(10) and await in_process.flush(10)
    expected, got = await dump(url.replace("/0", "/1")), await dump(url)
    assert got == expected
    assert sum(1 for key in got if ":timeline:" in key and "(expires)" not in key) >= 4
    assert writer.written > 0 and writer.dropped == 0 and writer.rejected == 0
    await writer.close()
    await in_process.close()


async def test_timeline_steps_keep_the_order_they_were_buffered_in(redis_server) -> None:
    store = ProcessStore(redis_server[0], "12345", frame_delay=0.0005)
    store.start()
    for n in range(3000):  # many frames
        store.append_timeline("T-1", f"step.{n}", f"1732848000.{n:06d}", {"n": n})
        if n % 97 == 0:
            await asyncio.sleep(0)
    assert await store.flush(10)
    entries = await store.timeline("T-1", count=5000)
    assert [fields["kind"] for _, fields in entries] == [f"step.{n}" for n in range(3000)]
    assert entries[5][1]["ts"] == "1732848000.000005"
    await store.close()


async def test_a_killed_writer_is_replaced_and_later_writes_still_land(redis_server) -> None:
    restarts = metrics.STORE_WRITER_RESTARTS.labels(platform="restart")
    before = restarts._value.get()
    store = ProcessStore(redis_server[0], "restart", restart_delay=0.05)
    store.start()
    store.put_ticket("T-1", {"n": 1})
    assert await store.flush(10)
    first_pid = store._proc.pid
    os.kill(first_pid, signal.SIGKILL)
    await wait_for(lambda: store.restarts == 1 and store._proc is not None
                   and store._proc.pid != first_pid)
    store.put_ticket("T-2", {"n": 2})
    assert await store.flush(10)
    assert await store.get_ticket("T-1") == {"n": "1"}
    assert await store.get_ticket("T-2") == {"n": "2"}
    assert restarts._value.get() == before + 1
    assert store.written >= 2  # the first writer's count is kept
    await store.close()


async def test_while_no_writer_runs_the_buffer_stays_bounded_and_the_newest_land(
        redis_server) -> None:
    dropped = metrics.STORE_BUFFER_DROPPED.labels(platform="nowriter")
    before = dropped._value.get()
    store = ProcessStore(redis_server[0], "nowriter", max_pending=100, restart_delay=1.0)
    store.start()
    assert await store.flush(10)
    os.kill(store._proc.pid, signal.SIGKILL)
    await wait_for(lambda: store._proc is None)
    for n in range(250):
        store.put_ticket(f"T-{n}", {"n": n})
    assert len(store._pending) == 100 and store.dropped == 150
    assert dropped._value.get() == before + 150
    assert await store.flush(10)  # the next writer takes what was kept
    assert await store.get_ticket("T-149") is None
    assert await store.get_ticket("T-150") == {"n": "150"}
    assert await store.get_ticket("T-249") == {"n": "249"}
    await store.close()


async def test_close_flushes_and_the_writer_exits_on_its_own(redis_server) -> None:
    store = ProcessStore(redis_server[0], "closing")
    store.start()
    assert await store.flush(10)
    proc = store._proc
    store.put_call("C-1", {"state": "up"})
    await store.close()
    assert proc.returncode == 0  # end of input: flushed and exited, not killed
    client = redis.Redis.from_url(redis_server[0], decode_responses=True)
    assert await client.hgetall("hl:closing:call:C-1") == {"state": "up"}
    assert await client.smembers("hl:closing:calls:live") == {"C-1"}
    await client.aclose()


async def test_a_stopped_redis_loses_nothing_once_it_is_back(redis_server) -> None:
    url, proc = redis_server
    store = ProcessStore(url, "stall")
    store.start()
    assert await store.flush(10)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        for n in range(500):
            store.append_timeline("T-1", "step", f"1.{n:06d}", {"n": n})
        assert not await store.flush(0.5)  # Redis does not answer: not flushed, not lost
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert await store.flush(20)
    assert len(await store.timeline("T-1", count=1000)) == 500
    assert store.dropped == 0
    await store.close()
