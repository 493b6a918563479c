"""Store write throughput: write-behind buffer vs one awaited command per write.

Starts its own redis-server on a free loopback port (no persistence, temp dir),
then measures, on the same server:

1. naive: per event, `await` HSET (leg), SADD (call's legs), XADD (timeline);
2. write-behind burst: the same three writes per event through RedisStore,
   produced in chunks of --chunk events (as one AMI read delivers several),
   timed from the first enqueue until Redis acknowledged the last write;
3. write-behind paced: --rate events/s for --seconds, the sustained case,
   with the enqueue -> Redis acknowledgement lag per write at p50/p99.

Usage: .venv/bin/python bench/bench_store.py [--events 200000] [--rate 50000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as redis

from telephony.lab.private_redis import private_redis
from telephony.store import RedisStore


@contextmanager
def redis_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as workdir, private_redis(workdir) as (url, _):
        yield url


def leg_record(i: int) -> dict[str, str | int]:
    return {"channel": f"PJSIP/agent12345-{i % 50:08x}", "state": "up", "seq": i,
            "ticket_id": f"T-{i // 40}"}


def timeline_fields(i: int) -> dict[str, str]:
    return {"leg": f"1732848000.{i}", "node": "node12345"}


def timestamp(i: int) -> str:
    return f"{1732848000 + i // 1000}.{i % 1000:06d}"


async def naive(url: str, events: int) -> float:
    client = redis.Redis.from_url(url, decode_responses=True)
    started = time.perf_counter()
    for i in range(events):
        await client.hset(f"hl:naive:leg:L-{i % 2000}", mapping=leg_record(i))
        await client.sadd(f"hl:naive:call:C-{i // 40}:legs", f"L-{i % 2000}")
        await client.xadd(f"hl:naive:timeline:T-{i // 40}",
                          {"kind": "step", "ts": timestamp(i), **timeline_fields(i)})
    elapsed = time.perf_counter() - started
    await client.aclose()
    return events / elapsed


def write_event(store: RedisStore, i: int) -> None:
    store.put_leg(f"C-{i // 40}", f"L-{i % 2000}", leg_record(i))
    store.append_timeline(f"T-{i // 40}", "step", timestamp(i), timeline_fields(i))


async def burst(url: str, events: int, chunk: int) -> tuple[float, list[float], int]:
    lags: list[float] = []
    store = RedisStore.from_url(url, "bench", max_buffer=4 * events, lag_sink=lags.extend)
    store.start()
    started = time.perf_counter()
    for first in range(0, events, chunk):
        for i in range(first, min(events, first + chunk)):
            write_event(store, i)
        await asyncio.sleep(0)  # the AMI reader yields between reads
    await store.flush()
    elapsed = time.perf_counter() - started
    dropped = store.dropped
    await store.close()
    return events / elapsed, lags, dropped


async def paced(url: str, rate: int, seconds: float, tick: float = 0.005
                ) -> tuple[float, list[float], int]:
    lags: list[float] = []
    store = RedisStore.from_url(url, "bench-paced", lag_sink=lags.extend)
    store.start()
    started = time.perf_counter()
    produced = 0
    while (now := time.perf_counter()) - started < seconds:
        due = int((now - started) * rate)
        for i in range(produced, due):
            write_event(store, i)
        produced = max(produced, due)
        await asyncio.sleep(tick)
    await store.flush()
    elapsed = time.perf_counter() - started
    dropped = store.dropped
    await store.close()
    return produced / elapsed, lags, dropped


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(pct * 10) - 1]


async def run(args: argparse.Namespace) -> dict[str, float]:
    with redis_server() as url:
        naive_rate = await naive(url, args.naive_events)
        burst_rate, burst_lags, burst_dropped = await burst(url, args.events, args.chunk)
        paced_rate, paced_lags, paced_dropped = await paced(url, args.rate, args.seconds)
    return {
        "naive_events_per_s": round(naive_rate),
        "burst_events_per_s": round(burst_rate),
        "speedup": round(burst_rate / naive_rate, 1),
        "burst_lag_p50_ms": round(percentile(burst_lags, 50) * 1000, 2),
        "burst_lag_p99_ms": round(percentile(burst_lags, 99) * 1000, 2),
        "burst_dropped": burst_dropped,
        "paced_target_events_per_s": args.rate,
        "paced_events_per_s": round(paced_rate),
        "paced_lag_p50_ms": round(percentile(paced_lags, 50) * 1000, 2),
        "paced_lag_p99_ms": round(percentile(paced_lags, 99) * 1000, 2),
        "paced_dropped": paced_dropped,
        "writes_per_event": 3,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count() or 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the burst run")
    parser.add_argument("--naive-events", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=256, help="events per simulated AMI read")
    parser.add_argument("--rate", type=int, default=50_000, help="paced run, events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced run duration")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"machine: {result['cpus']} CPUs, load average {result['load_average_1m']:.2f}"
          " (numbers scale with a quiet machine)")
    print(f"naive (3 awaited commands/event): {result['naive_events_per_s']:>9,} events/s")
    print(f"write-behind burst:               {result['burst_events_per_s']:>9,} events/s"
          f"  ({result['speedup']}x naive)")
    print(f"  enqueue->Redis lag p50 {result['burst_lag_p50_ms']} ms,"
          f" p99 {result['burst_lag_p99_ms']} ms, dropped {result['burst_dropped']}")
    print(f"write-behind paced at {args.rate:,}/s:  {result['paced_events_per_s']:>9,} events/s")
    print(f"  enqueue->Redis lag p50 {result['paced_lag_p50_ms']} ms,"
          f" p99 {result['paced_lag_p99_ms']} ms, dropped {result['paced_dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
