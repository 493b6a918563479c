"""Process lifecycle: the start-up heap is frozen so full collections stay short."""

from __future__ import annotations

import gc

from telephony import metrics
from telephony.lifecycle import GC_THRESHOLDS, settle_heap


def test_settle_heap_moves_start_up_objects_out_of_the_collectors_sight():
    long_lived = [{"n": n} for n in range(1000)]  # e.g. a model built at start-up
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(long_lived)
        assert not any(obj is long_lived for obj in gc.get_objects())  # no longer walked
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_collector_pauses_are_timed_per_generation():
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        count = pause_count("2")
        gc.collect()
        assert pause_count("2") == count + 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def pause_count(generation: str) -> float:
    value = metrics.REGISTRY.get_sample_value("hotline_gc_pause_seconds_count",
                                              {"generation": generation})
    return value or 0.0
