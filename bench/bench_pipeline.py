"""The service's whole event path with Redis persistence on, against the same path without it.

    .venv/bin/python bench/bench_pipeline.py [--events 200000] [--rates 10000 25000 50000]

Each AMI event goes through PlatformService.handle_event: tracker, SLA recorder,
controller, and the write-behind store (timeline XADDs, live calls) to a real
redis-server started on loopback. Two stores, side by side in one run:
  * in-process: RedisStore builds and sends the writes on the service's loop
    (the design before the writer process; `store_process=False`);
  * writer process: the service only pickles facts to telephony.store_writer,
    which builds and sends them (ProcessStore, the service's default).
The stream is the real lab recordings, renumbered and interleaved
(bench_tracker.build_stream), keeping only the events the service subscribes
to (its AMI Filter drops the rest in Asterisk). Measured side by side in one run:
  1. baseline: the in-process path with persistence off (the store never
     flushes; the writes are still built);
  2. burst: every event as fast as the process can, persistence on, per store;
  3. paced: events offered at each --rates value for --seconds, per store;
     reported are the rate achieved, the writes dropped by the bounded buffers,
     the event -> Redis lag (buffered to written; with the writer process,
     from the first write of its frame, so at most one frame_delay high) at
     p50/p99, and at p99 over the writes of the run's second half (a lag that
     keeps growing is a rate not sustained, however few writes were dropped),
     the CPU time per event of this process (producer + flusher), of the
     writer process and of redis-server, and the load average when the run
     ended (the machine is shared: read rates next to it).

The garbage collector is set up as the service sets it up after start-up
(telephony.lifecycle.settle_heap: freeze what exists, a larger young
generation), which also moves the pre-built stream out of its view: a service
never holds its whole input, and a full collection walking 600k event dicts
would be charged to the path being measured. --python-gc-defaults leaves the
collector as Python starts it (and the stream in view).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import redis_server  # noqa: E402
from bench_tracker import build_stream  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from bench.procfs import cpu_seconds  # noqa: E402
from telephony.lifecycle import settle_heap  # noqa: E402
from telephony.service import AmiTarget, PlatformService, ServiceConfig  # noqa: E402
from telephony.store import RedisStore  # noqa: E402
from telephony.store_process import ProcessStore  # noqa: E402

Event = dict[str, Any]
STORES = ("in-process", "writer process")


def make_service(url: str, store: str = "in-process") -> PlatformService:
    config = ServiceConfig(
        platform="12345",
        # Never started: this bench feeds events directly, no Asterisk involved.
        ami=(AmiTarget("bench", "127.0.0.1", 1, "bench", "bench-secret"),),
        redis_url=url, tokens={"tokens": []}, store_process=store == "writer process",
    )
    return PlatformService(config)


class Lags:
    """Every write's buffered -> written lag, from either store."""

    def __init__(self, service: PlatformService, workdir: str) -> None:
        self.store = service.store
        self.values: list[float] = []
        self.path = os.path.join(workdir, f"lags-{id(self)}.f64")
        if isinstance(self.store, ProcessStore):
            self.store.lag_log = self.path  # the writer writes them there when it exits
        else:
            self.store._lag_sink = self.values.extend

    def collect(self) -> list[float]:
        if isinstance(self.store, ProcessStore) and os.path.exists(self.path):
            values = array("d")
            values.frombytes(Path(self.path).read_bytes())
            self.values = values.tolist()
        return self.values


def writer_cpu_seconds(service: PlatformService) -> float:
    """utime + stime of the store's writer process (0 for the in-process store)."""
    proc = getattr(service.store, "_proc", None)
    if proc is None:
        return 0.0
    return cpu_seconds(proc.pid)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000)[int(pct * 10) - 1] if len(values) > 1 \
        else values[0]


async def baseline(url: str, stream: list[Event]) -> float:
    service = make_service(url)  # store not started: writes only fill the buffer
    assert isinstance(service.store, RedisStore)
    service.store.max_buffer = len(stream) * 4
    t0 = time.perf_counter()
    for event in stream:
        service.handle_event(dict(event))
    return len(stream) / (time.perf_counter() - t0)


async def burst(url: str, stream: list[Event], store: str) -> tuple[float, float, int]:
    service = make_service(url, store)
    service.store.start()
    await service.store.flush()  # the writer process is up
    t0 = time.perf_counter()
    for n, event in enumerate(stream):
        service.handle_event(dict(event))
        if n % 500 == 0:
            await asyncio.sleep(0)  # the flusher runs on the same loop, as in the service
    fed = time.perf_counter() - t0
    await service.store.flush()
    total = time.perf_counter() - t0
    dropped = service.store.dropped
    await service.store.close()
    return len(stream) / fed, len(stream) / total, dropped


async def redis_cpu_seconds(url: str) -> float:
    client = Redis.from_url(url)
    info = await client.info("cpu")
    await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Paced:
    achieved: float
    dropped: int
    lags: list[float]
    cpu_us: float  # per event, this process
    writer_us: float  # per event, the writer process
    redis_us: float  # per event, redis-server


async def paced(url: str, stream: list[Event], rate: int, seconds: float, store: str,
                workdir: str, tick: float = 0.005) -> Paced:
    service = make_service(url, store)
    lags = Lags(service, workdir)
    service.store.start()
    await service.store.flush()  # the writer process is up
    redis_cpu = await redis_cpu_seconds(url)
    writer_cpu = writer_cpu_seconds(service)
    cpu = time.process_time()
    started = time.perf_counter()
    fed = 0
    while (now := time.perf_counter()) - started < seconds and fed < len(stream):
        due = min(int((now - started) * rate), len(stream))
        for event in stream[fed:due]:
            service.handle_event(dict(event))
        fed = max(fed, due)
        await asyncio.sleep(tick)
    elapsed = time.perf_counter() - started
    await service.store.flush()
    cpu = time.process_time() - cpu
    writer_cpu = writer_cpu_seconds(service) - writer_cpu
    redis_cpu = await redis_cpu_seconds(url) - redis_cpu
    await service.store.close()
    dropped = service.store.dropped
    return Paced(fed / elapsed, dropped, lags.collect(), cpu / fed * 1e6,
                 writer_cpu / fed * 1e6, redis_cpu / fed * 1e6)


async def run(args: argparse.Namespace) -> None:
    recorded = build_stream("lab_*", args.events)
    # What the service is sent: its AMI Filter keeps the rest on the Asterisk side,
    # so counting them here would inflate the rate with events it never sees.
    wanted = make_service("redis://127.0.0.1:1/0").subscribed_events
    stream = [e for e in recorded if e.get("Event") in wanted]
    print(f"stream: {len(stream)} AMI events the service subscribes to "
          f"(of {len(recorded)} recorded; the rest are filtered out by Asterisk)")
    if not args.python_gc_defaults:
        settle_heap()  # as `hotline serve` does after start-up
    stores = [s for s in STORES if s in args.stores]
    with redis_server() as url, tempfile.TemporaryDirectory() as workdir:
        base = await baseline(url, stream)
        print("\n| path | AMI events/s | vs baseline | writes dropped |")
        print("|---|---|---|---|")
        print(f"| baseline: tracker+SLA+controller+write building, no persistence | "
              f"{base:,.0f} | 1.00x | - |")
        for store in stores:
            fed_rate, end_rate, dropped = await burst(url, stream, store)
            print(f"| {store}: burst (fed) | {fed_rate:,.0f} | {fed_rate / base:.2f}x "
                  f"| {dropped} |")
            print(f"| {store}: burst (until all in Redis) | {end_rate:,.0f} | "
                  f"{end_rate / base:.2f}x | {dropped} |", flush=True)
        print("\n| store | offered events/s | achieved | dropped writes | lag p50 ms "
              "| lag p99 ms | lag p99 ms, second half | CPU µs/event (service) | (writer) "
              "| (redis) | load avg 1 min |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for rate in args.rates:
            for store in stores:  # alternating, so both see the same machine
                r = await paced(url, stream, rate, args.seconds, store, workdir)
                print(f"| {store} | {rate:,} | {r.achieved:,.0f} | {r.dropped} | "
                      f"{percentile(r.lags, 50) * 1000:.1f} | "
                      f"{percentile(r.lags, 99) * 1000:.1f} | "
                      f"{percentile(r.lags[len(r.lags) // 2:], 99) * 1000:.1f} | {r.cpu_us:.1f} | "
                      f"{r.writer_us:.1f} | {r.redis_us:.1f} | {os.getloadavg()[0]:.2f} |",
                      flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rates", type=int, nargs="+", default=[10_000, 25_000, 50_000])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--python-gc-defaults", action="store_true",
                        help="skip the service's GC set-up (freeze, young generation size)")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.CRITICAL)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
