"""Run a long-lived server until SIGINT/SIGTERM, then stop it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Iterator
from typing import Protocol

from telephony.logging import get_logger
from telephony.metrics import EVENT_LOOP_LAG_SECONDS, GC_PAUSE_SECONDS


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signal(server: Startable) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    settle_heap()
    watcher = asyncio.create_task(watch_loop_lag(), name="loop-lag")
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        await server.stop()


# Young-generation size: Python's default (700) collects every few hundred events,
# promoting whatever is in flight (SLA records, buffered writes) into older
# generations that are then walked again and again. At 20,000 the event path
# spent about 70 ms instead of about 1,070 ms in the collector per 8 s at 40,000
# events/s (bench/bench_pipeline.py); garbage cycles wait a little longer.
GC_THRESHOLDS = (20_000, 10, 10)


def settle_heap() -> None:
    """Tune the garbage collector for a long-lived event-driven service.

    Everything built at start-up (the routing model, jieba's dictionary, config,
    modules) lives as long as the process, yet every full collection walked it:
    one took about 40 ms in a started service, a stall a key press could land
    in. Frozen, it is never walked again (objects made later are collected as
    usual), and a larger young generation lets transient objects die uncollected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if _time_pauses not in gc.callbacks:
        gc.callbacks.append(_time_pauses)


_pause_started = (0.0, 0.0)  # perf_counter, thread CPU time at the current collection's start
_last_pause = (0.0, 0.0, -1)  # (started, lasted, generation) of the latest collection
LONG_PAUSE = 0.01  # a collection longer than this is logged, with its own CPU time


def _time_pauses(phase: str, info: dict[str, int]) -> None:
    """Every collection's pause, per generation: the loop stands still meanwhile."""
    global _pause_started, _last_pause
    if phase == "start":
        _pause_started = (time.perf_counter(), time.thread_time())
        return
    started, cpu_started = _pause_started
    lasted = time.perf_counter() - started
    GC_PAUSE_SECONDS.labels(generation=str(info["generation"])).observe(lasted)
    _last_pause = (started, lasted, info["generation"])
    if lasted > LONG_PAUSE:
        # CPU far below the wall time: the process was waiting for a core, not collecting.
        get_logger("telephony.lifecycle").warning(
            "gc.long_pause", generation=info["generation"], wall_ms=round(lasted * 1e3, 1),
            cpu_ms=round((time.thread_time() - cpu_started) * 1e3, 1),
            collected=info.get("collected"))


_holds = 0  # operations running now, each holding automatic collection off
_held_by_us = False  # whether the first hold turned the collector off (it may already be off)
# A collection overdue by this many young generations runs despite holds: under a
# constant stream of operations the heap must not grow without bound.
OVERDUE_GENERATIONS = 4


@contextlib.contextmanager
def collection_deferred() -> Iterator[None]:
    """No automatic garbage collection starts inside: an operation's actions leave first.

    A young collection took 9 to 21 ms of CPU in bench/bench_pipeline.py and up to
    45 ms of wall time in bench/bench_transfer.py (`gc.long_pause`); one that
    starts between a key press and its AMI action adds all of it to the press.
    Held off here, it runs at the first allocation after the last hold ends (the
    count keeps growing meanwhile), when the action is already on its way. Holds
    nest and overlap (concurrent operations on other calls); `watch_loop_lag`
    collects anyway if one is far overdue.
    """
    global _holds, _held_by_us
    if _holds == 0:
        _held_by_us = gc.isenabled()
        gc.disable()
    _holds += 1
    try:
        yield
    finally:
        _holds -= 1
        if _holds == 0 and _held_by_us:
            gc.enable()


def _collect_if_overdue() -> None:
    if _holds and gc.get_count()[0] > OVERDUE_GENERATIONS * max(gc.get_threshold()[0], 1):
        get_logger("telephony.lifecycle").warning("gc.overdue_collection", holds=_holds)
        gc.collect(0)


async def watch_loop_lag(interval: float = 0.05, stall: float = 0.05) -> None:
    """Export how late a short timer fires, and log each stall with the collector's part.

    A key press lands in the same loop: a stall here is latency on the press.
    Every 50 ms: at 100 Hz the watcher alone was a tenth of an idle service's CPU.
    """
    log = get_logger("telephony.lifecycle")
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        late = loop.time() - due
        EVENT_LOOP_LAG_SECONDS.observe(max(late, 0.0))
        _collect_if_overdue()
        if late > stall:
            started, lasted, generation = _last_pause
            in_gc = lasted if time.perf_counter() - started < late + interval else 0.0
            log.warning("loop.stalled", late_ms=round(late * 1000, 1),
                        gc_ms=round(in_gc * 1000, 1), gc_generation=generation)
