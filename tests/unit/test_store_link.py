"""The service <-> writer pipe: frames, replies, and how the writer applies a frame."""

from __future__ import annotations

import asyncio
import pickle

import pytest
import redis.asyncio as redis

from telephony.domain_events import CALL_STARTED, DomainEvent
from telephony.store import RedisStore
from telephony.store_link import (
    HEADER,
    STAT_FIELDS,
    FrameError,
    encode_frame,
    read_frame,
    read_reply,
    reply_line,
)
from telephony.store_process import ProcessStore
from telephony.store_writer import FrameApplier


def reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def make_store() -> RedisStore:
    # Never connects: only the buffer is looked at.
    return RedisStore(redis.Redis.from_url("redis://127.0.0.1:1/0"), "unit")


FACT = tuple(DomainEvent("leg.bridged", 1732848000.000001, "c1", "T-1", "u1",
                         {"bridge": "b1", "peers": ["u2"]}))


async def test_frames_round_trip_in_order_then_a_clean_end() -> None:
    first = [FACT, ("put_ticket", ("T-1", {"summary": "噪音\r\nAction: Originate"}))]
    second = [("flush", (7,))]
    reader = reader_of(encode_frame(12.5, first) + encode_frame(13.0, second))
    assert await read_frame(reader) == (12.5, first)
    assert await read_frame(reader) == (13.0, second)
    assert await read_frame(reader) is None


@pytest.mark.parametrize(("data", "error"), [
    (encode_frame(1.0, [FACT])[:5], "inside a frame header"),
    (encode_frame(1.0, [FACT])[:-3], "inside a frame"),
    (HEADER.pack(2**31, 1.0), "frame of"),
    (HEADER.pack(4, 1.0) + b"\x00abc", "unreadable frame"),
    (HEADER.pack(len(p := pickle.dumps({"a": 1})), 1.0) + p, "not a list"),
])
async def test_a_broken_stream_is_a_frame_error_not_a_guess(data: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        await read_frame(reader_of(data))


def test_replies_round_trip_and_stray_output_is_not_a_reply() -> None:
    line = reply_line("flushed", {"written": 3}, token=9)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert read_reply(line) == {"type": "flushed", "written": 3, "token": 9}
    for stray in (b"hello\n", b"[1, 2]\n", b'{"no_type": 1}\n', b'{"type": "st'):
        assert read_reply(stray) is None


def test_the_applier_buffers_exactly_what_direct_calls_buffer() -> None:
    direct, applied = make_store(), make_store()
    direct.add_fact(FACT)
    direct.put_ticket("T-1", {"urgency": 2})
    direct.append_timeline("T-1", "ivr.callback", "1732848000.5", {"callback": "138"})
    direct.end_call("c1", {"ended": 3.0}, ["u1"])
    tokens = FrameApplier(applied).apply(5.0, [
        FACT,
        ("put_ticket", ("T-1", {"urgency": 2})),
        ("flush", (1,)),
        ("append_timeline", ("T-1", "ivr.callback", "1732848000.5", {"callback": "138"})),
        ("end_call", ("c1", {"ended": 3.0}, ["u1"])),
        ("flush", (2,)),
    ])
    assert tokens == [1, 2]
    assert list(applied._buffer) == list(direct._buffer)
    assert set(applied._stamps) == {5.0}  # the lag counts from the service's buffering
    assert applied.stamp is None  # later writes are stamped with their own time again


def test_a_malformed_message_is_refused_and_the_rest_still_applied() -> None:
    store = make_store()
    applier = FrameApplier(store)
    applier.apply(1.0, [
        ("__class__", ()),  # not a store call: never looked up on the store
        ("put_ticket", ("T-1",)),  # wrong arguments
        ("flush",),  # no token
        (1, 2, 3),
        FACT,
    ])
    assert applier.refused == 4
    assert [w[0] for w in store._buffer] == ["xadd"]
    stats = applier.stats()
    assert set(stats) == {*STAT_FIELDS, "lags"} and stats["refused"] == 4
    assert stats["pending"] == 1


def test_stats_hand_over_each_batch_lag_once() -> None:
    store = make_store()
    applier = FrameApplier(store)
    assert store.batch_lags == []
    store.batch_lags.extend([0.001, 0.25])
    assert applier.stats()["lags"] == [0.001, 0.25]
    assert applier.stats()["lags"] == []


def test_the_process_store_forwards_only_facts_that_write() -> None:
    store = ProcessStore("redis://127.0.0.1:1/0", "unit")
    facts = [DomainEvent("leg.ringing", 1.0, "c1", None, "u1"),  # nothing to write
             DomainEvent(CALL_STARTED, 1.0, "c1"),
             DomainEvent("leg.ringing", 1.0, "c1", "T-1", "u1")]
    for fact in facts:
        store.add_fact(fact)
    assert list(store._pending) == [tuple(facts[1]), tuple(facts[2])]
    assert all(type(m) is tuple for m in store._pending)  # plain tuples: cheap to pickle


def test_the_process_store_buffer_is_bounded_oldest_first() -> None:
    store = ProcessStore("redis://127.0.0.1:1/0", "unit-bound", max_pending=3)
    for n in range(5):
        store.put_ticket(f"T-{n}", {"n": n})
    assert [m[1][0] for m in store._pending] == ["T-2", "T-3", "T-4"]
    assert store.dropped == 2 and store.pending == 3


async def test_a_message_pickle_cannot_carry_is_dropped_alone_and_counted() -> None:
    store = ProcessStore("redis://127.0.0.1:1/0", "unit-unpicklable")
    counter = store._m_dropped
    before = counter._value.get()
    good = [("put_ticket", ("T-1", {"n": 1})), ("put_ticket", ("T-3", {"n": 3}))]
    bad = ("put_ticket", ("T-2", {"callback": lambda: None}))
    frame = store._encode_each(7.0, [good[0], bad, good[1]], TypeError("cannot pickle"))
    assert await read_frame(reader_of(frame)) == (7.0, good)
    assert store.dropped == 1 and counter._value.get() == before + 1
