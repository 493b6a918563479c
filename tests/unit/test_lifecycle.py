"""Process lifecycle: the start-up heap is frozen so full collections stay short."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from telephony import metrics
from telephony.lifecycle import GC_THRESHOLDS, settle_heap


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """settle_heap changes the whole process's collector: put it back for later tests.

    Its pause callback left installed would log every long collection of the rest
    of the test session (to stdout, where CLI tests read their JSON output).
    """
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


def test_settle_heap_moves_start_up_objects_out_of_the_collectors_sight():
    long_lived = [{"n": n} for n in range(1000)]  # e.g. a model built at start-up
    settle_heap()
    assert gc.get_freeze_count() >= len(long_lived)
    assert not any(obj is long_lived for obj in gc.get_objects())  # no longer walked
    assert gc.get_threshold() == GC_THRESHOLDS


def test_collector_pauses_are_timed_per_generation():
    settle_heap()
    count = pause_count("2")
    gc.collect()
    assert pause_count("2") == count + 1


def pause_count(generation: str) -> float:
    value = metrics.REGISTRY.get_sample_value("hotline_gc_pause_seconds_count",
                                              {"generation": generation})
    return value or 0.0


async def test_a_blocked_loop_is_measured_and_logged_as_a_stall():
    import asyncio
    import io
    import time

    from telephony.lifecycle import watch_loop_lag
    from telephony.logging import configure_logging

    logged = io.StringIO()
    configure_logging("INFO", logged)
    before = metrics.REGISTRY.get_sample_value("hotline_event_loop_lag_seconds_count") or 0.0
    slow_before = slow_count()
    watcher = asyncio.create_task(watch_loop_lag(interval=0.005, stall=0.05))
    await asyncio.sleep(0.02)
    time.sleep(0.12)  # noqa: ASYNC251 - on purpose: a callback that holds the loop
    await asyncio.sleep(0.02)
    watcher.cancel()
    assert (metrics.REGISTRY.get_sample_value("hotline_event_loop_lag_seconds_count")
            or 0.0) > before + 2
    assert slow_count() == slow_before + 1  # one timer fired more than 100 ms late
    assert '"event": "loop.stalled"' in logged.getvalue()


def slow_count() -> float:
    total = metrics.REGISTRY.get_sample_value("hotline_event_loop_lag_seconds_count") or 0.0
    fast = metrics.REGISTRY.get_sample_value("hotline_event_loop_lag_seconds_bucket",
                                             {"le": "0.1"}) or 0.0
    return total - fast


def test_a_long_collection_is_logged_with_its_own_cpu_time(monkeypatch):
    import io
    import json

    from telephony import lifecycle
    from telephony.logging import configure_logging

    logged = io.StringIO()
    configure_logging("INFO", logged)
    monkeypatch.setattr(lifecycle, "LONG_PAUSE", 0.0)  # every collection counts as long
    settle_heap()
    gc.collect()
    pauses = [json.loads(line) for line in logged.getvalue().splitlines()
              if '"gc.long_pause"' in line]
    assert pauses and pauses[-1]["generation"] == 2
    assert 0 <= pauses[-1]["cpu_ms"] <= pauses[-1]["wall_ms"] + 1  # CPU never beyond the wall


def test_collection_deferred_nests_and_restores_the_collectors_state():
    from telephony.lifecycle import collection_deferred

    assert gc.isenabled()
    with collection_deferred():
        assert not gc.isenabled()
        with collection_deferred():  # a second operation on another call
            assert not gc.isenabled()
        assert not gc.isenabled()  # the first one still runs
    assert gc.isenabled()

    gc.disable()  # switched off by someone else: a hold never switches it on
    try:
        with collection_deferred():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_far_overdue_collection_runs_despite_a_hold(monkeypatch):
    from telephony import lifecycle

    thresholds = gc.get_threshold()
    collections: list[int] = []
    monkeypatch.setattr(lifecycle.gc, "collect", lambda generation=2: collections.append(
        generation) or 0)
    try:
        gc.set_threshold(100, 10, 10)
        with lifecycle.collection_deferred():
            held = [[] for _ in range(10)]  # young containers: the count sees them
            lifecycle._collect_if_overdue()
            assert collections == []  # 10 containers: not overdue
            held.extend([] for _ in range(4 * 100 + 50))
            lifecycle._collect_if_overdue()
            assert collections == [0]
        lifecycle._collect_if_overdue()  # no hold: the collector runs on its own
        assert collections == [0]
    finally:
        gc.set_threshold(*thresholds)
