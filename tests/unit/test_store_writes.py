"""RedisStore's write path without Redis: what each batch carries, merging, dropping."""

from __future__ import annotations

import json

import redis.asyncio as redis

from telephony import metrics
from telephony.store import RedisStore, timeline_write


def make_store(**kwargs) -> RedisStore:
    # The client never connects here: only the buffer is exercised.
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True)
    return RedisStore(client, kwargs.pop("platform", "unit"), **kwargs)


def buffered(store: RedisStore) -> list[list]:
    """The writes the next batches would carry, in order (merged-away ones left out)."""
    _, batch = store._take_batch()
    return batch


def test_a_hash_written_many_times_before_a_flush_is_one_write_with_the_last_values():
    store = make_store()
    store.put_ticket("T-1", {"state": "new", "urgency": 1})
    store.append_timeline("T-1", "created", "1732848000.000001")
    store.put_ticket("T-1", {"state": "queued", "queue": "q12345"})
    store.put_ticket("T-1", {"state": "answered", "agent": None})

    writes = buffered(store)

    assert store.coalesced == 2
    assert [w[0] for w in writes] == ["xadd", "hset"]  # the merged write sits at the newest place
    assert writes[1] == ["hset", "hl:unit:ticket:T-1",
                         {"state": "answered", "urgency": "1", "queue": "q12345"}]


def test_every_timeline_step_is_kept_in_order_with_its_asterisk_timestamp():
    store = make_store()
    stamps = ["1732848000.000001", "1732848000.000001", "1732848000.250000"]
    for kind, ts in zip(["leg.ringing", "leg.ringing", "leg.answered"], stamps, strict=True):
        store.append_timeline("T-2", kind, ts, {"leg": "L-1"})

    writes = buffered(store)

    assert store.coalesced == 0
    assert [(w[3], w[5]) for w in writes] == list(
        zip(["leg.ringing", "leg.ringing", "leg.answered"], stamps, strict=True))
    assert all(w[:3] == ("xadd", "hl:unit:timeline:T-2", "kind") for w in writes)


def test_a_hash_write_after_its_expire_is_not_merged_across_it():
    # Merged behind the EXPIRE, the EXPIRE would meet no key and the TTL would be lost.
    store = make_store()
    store.put_call("C-1", {"state": "up"})
    store.end_call("C-1", {"state": "ended"})
    store.put_call("C-1", {"state": "up-again"})

    writes = buffered(store)

    call_key = "hl:unit:call:C-1"
    touching = [(w[0], w[2]) for w in writes if w[1] == call_key]
    assert touching == [("hset", {"state": "ended"}), ("expire", str(store.ended_ttl)),
                        ("hset", {"state": "up-again"})]
    assert [w[0] for w in writes if w[1] == "hl:unit:calls:live"] == ["sadd", "srem", "sadd"]


def test_a_hash_already_sent_is_not_merged_into():
    store = make_store()
    store.update_op("op-1", {"state": "sent"})
    first = buffered(store)
    store.update_op("op-1", {"state": "confirmed"})
    second = buffered(store)
    assert first == [["hset", "hl:unit:op:op-1", {"state": "sent"}]]
    assert second == [["hset", "hl:unit:op:op-1", {"state": "confirmed"}]]


def test_a_full_buffer_drops_the_oldest_counts_only_real_writes_and_keeps_the_newest():
    store = make_store(platform="unit-drop", max_buffer=3)
    before = metrics.REGISTRY.get_sample_value(
        "hotline_store_buffer_dropped_total", {"platform": "unit-drop"}) or 0.0
    store.put_ticket("T-1", {"n": 1})
    store.put_ticket("T-1", {"n": 2})  # merges: the first slot now holds a no-op
    store.append_timeline("T-1", "a", "1.000001")
    store.append_timeline("T-1", "b", "1.000002")  # full: pops the no-op, nothing lost
    assert store.dropped == 0
    store.append_timeline("T-1", "c", "1.000003")  # pops the merged HSET: one write lost

    assert store.dropped == 1
    after = metrics.REGISTRY.get_sample_value(
        "hotline_store_buffer_dropped_total", {"platform": "unit-drop"})
    assert after - before == 1
    assert len(store._buffer) == store.max_buffer
    assert [w[3] for w in buffered(store)] == ["a", "b", "c"]
    # The dropped HSET no longer takes merges: the next one is a write of its own.
    store.put_ticket("T-1", {"m": 3})
    assert buffered(store) == [["hset", "hl:unit-drop:ticket:T-1", {"m": "3"}]]


def test_timeline_write_encodes_values_as_strings_and_keeps_the_steps_own_kind_and_ts():
    write = timeline_write("k", "transfer.started", "1732848000.123456",
                           {"kind": "blind", "ts": "0", "gone": None, "ok": True,
                            "wait": 0.25, "peers": ["L-1", "坐席"], "n": 12345678901234567890})
    assert write == ("xadd", "k", "kind", "transfer.started", "ts", "1732848000.123456",
                     "ok", "1", "wait", "0.25", "peers", '["L-1","坐席"]',
                     "n", "12345678901234567890")
    # What the batch script receives decodes back to the same strings.
    assert json.loads(json.dumps([write])) == [list(write)]


def test_buffered_timeline_writes_leave_the_garbage_collectors_sight():
    """A backlog of timeline steps must not lengthen every full collection."""
    import gc

    write = timeline_write("k", "leg.bridged", "1.000001", {"bridge": "b-1", "peers": ["L"]})
    gc.collect()  # one look: a tuple of strings is then untracked
    assert not gc.is_tracked(write)


def test_batches_are_the_json_the_batch_script_always_read():
    """orjson encodes a batch to the bytes the standard library's encoder gave (the
    Lua script's cjson reads them): control characters, quotes, backslashes, CJK."""
    from telephony.store import batch_json

    awkward = ["plain", "市民反映：夜间施工", 'say "hi"', "back\\slash", "tab\there",
               "\r\nAction: Originate", "\x00\x1f\x7f", "emoji 🚒", ""]
    batch = [timeline_write("hl:12345:timeline:T-1", "step", "1.000001",
                            {f"f{n}": text for n, text in enumerate(awkward)}),
             ["hset", "hl:12345:call:C-1", {"summary": awkward[1], "note": awkward[5]}],
             ("sadd", "hl:12345:calls:live", "C-1")]
    stdlib = json.dumps(batch, ensure_ascii=False, separators=(",", ":")).encode()
    assert batch_json(batch) == stdlib
    assert json.loads(batch_json(batch))[0][6:8] == ["f0", "plain"]
