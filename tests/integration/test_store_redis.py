"""RedisStore against a real redis-server started on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis.asyncio as redis

from telephony import metrics
from telephony.store import RedisStore

pytestmark = pytest.mark.integration

@pytest.fixture
async def store(redis_server):
    url, _ = redis_server
    st = RedisStore.from_url(url, "12345")
    st.start()
    yield st
    await st.close()


async def test_ticket_call_and_legs_round_trip_and_survive_a_restart(redis_server, store):
    store.put_ticket("T-1", {"category": "noise", "urgency": 2, "tags": ["night", "噪音"]})
    store.put_call("C-1", {"state": "up", "ticket_id": "T-1", "caller": "13800000000"})
    store.put_leg("C-1", "1700000000.1", {"channel": "PJSIP/citizen-0001", "state": "up"})
    store.put_leg("C-1", "1700000000.2", {"channel": "PJSIP/agent12345-1", "state": "ringing"})
    store.put_call("C-2", {"state": "ringing"})
    assert await store.flush(5)

    ticket = await store.get_ticket("T-1")
    assert ticket == {"category": "noise", "urgency": "2", "tags": '["night","噪音"]'}

    # A fresh store on the same Redis is what a restarted service sees.
    restarted = RedisStore.from_url(redis_server[0], "12345")
    live = await restarted.live_calls()
    assert sorted(live) == ["C-1", "C-2"]
    assert live["C-1"]["ticket_id"] == "T-1"
    assert live["C-1"]["legs"]["1700000000.2"] == {
        "channel": "PJSIP/agent12345-1", "state": "ringing"}
    assert live["C-2"]["legs"] == {}
    # Other platforms live in their own namespace.
    other_platform = RedisStore.from_url(redis_server[0], "110")
    assert await other_platform.live_call_ids() == set()
    await other_platform.close()
    await restarted.close()


async def test_end_call_leaves_live_set_and_expires(store):
    store.put_call("C-9", {"state": "up"})
    store.put_leg("C-9", "L-1", {"state": "up"})
    store.end_call("C-9", {"state": "ended", "cause": "16"}, leg_ids=["L-1"])
    assert await store.flush(5)
    assert await store.live_call_ids() == set()
    assert (await store.get_call("C-9"))["state"] == "ended"
    ttl = await store.redis.ttl(store.keys.leg("L-1"))
    assert 0 < ttl <= store.ended_ttl


async def test_timeline_keeps_asterisk_microsecond_timestamps_in_order(store):
    stamps = ["1732848000.000001", "1732848000.250000", "1732848001.999999"]
    for kind, ts in zip(["ring", "answer", "bridge"], stamps, strict=True):
        store.append_timeline("T-7", kind, ts, {"leg": "L-1", "node": "node12345"})
    assert await store.flush(5)
    entries = await store.timeline("T-7")
    assert [fields["kind"] for _, fields in entries] == ["ring", "answer", "bridge"]
    assert [fields["ts"] for _, fields in entries] == stamps
    second_id = entries[1][0]
    page = await store.timeline("T-7", start=second_id, count=1)
    assert [fields["kind"] for _, fields in page] == ["answer"]


async def test_operation_claim_is_idempotent(store):
    first = await store.claim_op("op-1", "agent1:C-1:xfer110", {"kind": "blind", "to": "110"})
    second = await store.claim_op("op-2", "agent1:C-1:xfer110", {"kind": "blind", "to": "110"})
    assert first.created and first.op_id == "op-1"
    assert not second.created and second.op_id == "op-1"
    assert await store.get_op("op-2") is None
    store.update_op("op-1", {"state": "confirmed", "confirmed_ts": "1732848002.000100"})
    assert await store.flush(5)
    op = await store.find_op_by_key("agent1:C-1:xfer110")
    assert op is not None
    assert op["state"] == "confirmed" and op["kind"] == "blind" and op["op_id"] == "op-1"
    assert await store.find_op_by_key("nobody") is None


async def test_a_write_redis_rejects_is_skipped_not_retried_forever(store):
    await store.redis.set(store.keys.ticket("T-bad"), "not a hash")
    store.put_ticket("T-bad", {"x": 1})  # WRONGTYPE
    store.put_ticket("T-good", {"x": 2})
    assert await store.flush(5)
    assert store.rejected == 1
    assert await store.get_ticket("T-good") == {"x": "2"}


async def test_stopped_redis_never_blocks_the_producer_and_drops_oldest(redis_server):
    url, proc = redis_server
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=0.5,
                                  socket_connect_timeout=0.5)
    store = RedisStore(client, "stall", max_buffer=500, batch_size=100, retry_delay=0.05)
    store.start()
    dropped_before = metrics.REGISTRY.get_sample_value(
        "hotline_store_buffer_dropped_total", {"platform": "stall"}) or 0.0

    os.kill(proc.pid, signal.SIGSTOP)
    try:
        # Play the AMI reader: one write per event, ~1 ms apart, for 1.5 s.
        slowest_put = 0.0
        worst_loop_lag = 0.0
        written = 0
        finish = time.monotonic() + 1.5
        while time.monotonic() < finish:
            started = time.perf_counter()
            store.put_ticket(f"T{written}", {"n": written})
            slowest_put = max(slowest_put, time.perf_counter() - started)
            written += 1
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst_loop_lag = max(worst_loop_lag, time.perf_counter() - before - 0.001)
        assert not await store.flush(0.2)  # Redis is stopped: nothing can drain
    finally:
        os.kill(proc.pid, signal.SIGCONT)

    assert written > 600  # the producer kept its pace while Redis was stopped
    assert slowest_put < 0.005
    assert worst_loop_lag < 0.1
    in_flight = store.batch_size * store.pipeline_depth  # sent, never answered
    assert store.dropped >= written - store.max_buffer - in_flight
    dropped_after = metrics.REGISTRY.get_sample_value(
        "hotline_store_buffer_dropped_total", {"platform": "stall"})
    assert dropped_after - dropped_before == store.dropped

    assert await store.flush(15)
    assert await store.get_ticket(f"T{written - 1}") == {"n": str(written - 1)}  # newest kept
    assert await store.get_ticket("T0") is None  # oldest dropped
    await store.close()


async def test_values_reach_redis_exactly_through_the_batch_script(store):
    store.put_ticket("T-types", {"missing": None, "urgent": True, "score": 0.1,
                                 "big": 12345678901234567890, "summary": "噪音 \"扰民\"\n夜间"})
    assert await store.flush(5)
    assert await store.get_ticket("T-types") == {
        "urgent": "1", "score": "0.1", "big": "12345678901234567890",
        "summary": "噪音 \"扰民\"\n夜间"}


async def test_many_updates_of_one_record_land_as_the_last_values(store):
    for n in range(50):
        store.update_op("op-7", {"state": f"step{n}", f"at{n % 3}": n})
    store.update_op("op-7", {"note": None, "done": True})
    assert await store.flush(5)
    assert store.coalesced > 0
    assert await store.get_op("op-7") == {"state": "step49", "at0": "48", "at1": "49",
                                          "at2": "47", "done": "1"}


async def test_pipelined_batches_keep_every_timeline_step_in_order(redis_server):
    store = RedisStore.from_url(redis_server[0], "12345", batch_size=7, pipeline_depth=3)
    store.start()
    stamps = [f"1732848000.{n:06d}" for n in range(200)]
    for n, ts in enumerate(stamps):
        store.append_timeline("T-8", f"step{n}", ts, {"leg": "L-1"})
        store.put_call("C-8", {"state": f"s{n}"})  # hash writes between steps merge away
        if n % 40 == 0:
            await asyncio.sleep(0)  # let batches go out while steps are still coming
    assert await store.flush(5)
    entries = await store.timeline("T-8", count=500)
    assert [fields["ts"] for _, fields in entries] == stamps
    assert [fields["kind"] for _, fields in entries] == [f"step{n}" for n in range(200)]
    assert (await store.get_call("C-8"))["state"] == "s199"
    assert await store.live_call_ids() == {"C-8"}
    await store.close()
