"""Benchmark: monitor feed delivery, AMI event -> WebSocket client, with 100 clients under load.

    .venv/bin/python bench/bench_monitor.py [--rate 8] [--seconds 60] [--clients 100]

N WebSocket clients (aiohttp, in this process) follow the 12345 service's
`/api/v1/monitor` feed unfiltered, as supervisors (docs/monitor.md), while
bench_transfer.py's calls run at --rate calls/s for --seconds, every one
transferred with the service's one-key press, so the feed carries transfers.

Measured, per client and message with a non-null `rx`: arrival here
(`time.time()`) minus `rx`, the service's wall clock when it handled the AMI
event that caused the message (docs/monitor.md says "read"; the service stamps
it after its tracker's feed(), once the event is out of its event queue), on
the same machine and clock; arrival minus `ts`
(Asterisk's time of the change) for reference. Each client checks that the seqs
arrive one by one, with no gap (an unfiltered client sees every message): a gap
exits 1, it is a bug, not noise. Skips ahead (`snapshot` with `skipped_ahead`)
and disconnects by the service are counted. One more client runs in a child
process (this file with --probe): N clients in one Python loop read each message
one after the other, and the probe's numbers leave that share of this bench out.

Baseline, side by side in the same run: the tracker's own event handling. An AMI
session of this bench on node12345 subscribed to the service's own events
captures every event of the run; afterwards they are replayed through a fresh
`telephony.tracker.Tracker`, timing each `feed()`. Beside it, the service's own
`hotline_monitor_build_seconds` (building, numbering and fanning out one loop
turn's messages), read from /metrics before and after the load.

Memory per client: the 12345 service's VmRSS with no client connected and with N
connected and idle, before the load and again after it.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_transfer import (  # noqa: E402
    OBSERVED,
    TARGET_HANGUP_MS,
    Observer,
    Presser,
    RateResult,
    run_rate,
    service_processes,
    stalls,
)
from bench.procfs import cpu_seconds  # noqa: E402
from bench.stats import percentile, percentile_interval  # noqa: E402
from telephony.ami import AmiSession  # noqa: E402
from telephony.control.controller import FED_EVENTS  # noqa: E402
from telephony.lab.agents import logged_in_agent  # noqa: E402
from telephony.lab.lab import Lab  # noqa: E402
from telephony.lab.topology import HOST, NODES  # noqa: E402
from telephony.logging import configure_logging  # noqa: E402
from telephony.monitor.queues import MEMBER_EVENTS  # noqa: E402
from telephony.tracker import Tracker  # noqa: E402

TARGET_P99_MS = 20.0
# The bootstrap draws deliveries in blocks of this much service time (by `rx`): one
# message's 100 deliveries, and the messages of one loop stall, wait on the same
# turns of the same processes, so they are one unit, not 100 independent samples.
BLOCK_S = 0.1
SETTLE_S = 2.0  # quiet time before a memory reading and after the load
BUILD_METRIC = "hotline_monitor_build_seconds"
MESSAGES_METRIC = "hotline_monitor_messages_total"
LAG_TICK_S = 0.01  # this process's own loop-lag probe
SUPERVISOR = "supervisor12345"
MONITOR_URL = f"http://{HOST}:{NODES['12345'].http_port}/api/v1/monitor"
THIS_FILE = str(Path(__file__).resolve())


def subscribed_events() -> frozenset[str]:
    """The AMI events the service subscribes to (PlatformService.subscribed_events)."""
    return frozenset(Tracker().handled_events | FED_EVENTS | MEMBER_EVENTS
                     | {"UserEvent", "FullyBooted"})


# --------------------------------------------------------------------------- one client


@dataclass
class FeedLog:
    """What one client saw: arrivals by seq, and whether the seqs ran without a gap."""

    index: int
    seqs: array.array = field(default_factory=lambda: array.array("q"))
    arrivals: array.array = field(default_factory=lambda: array.array("d"))
    last_seq: int | None = None
    snapshots: int = 0
    skips: int = 0  # snapshots with reason skipped_ahead
    gaps: int = 0  # times one or more seqs were missing
    missing: int = 0  # seqs missing in all
    disorder: int = 0  # a seq not after the last one (duplicate, out of order, no snapshot)
    closed: str = ""  # the service closed it: code and reason
    leaving: bool = False  # this bench is closing it

    COUNTS = ("index", "last_seq", "snapshots", "skips", "gaps", "missing", "disorder",
              "closed")  # what to_json carries besides the samples

    @property
    def messages(self) -> int:
        """Live messages timed (those with an `rx`)."""
        return len(self.seqs)

    def to_json(self, table: Mapping[int, tuple[float, float]]) -> dict[str, Any]:
        """What the probe child hands back: its log and the rx/ts of what it saw."""
        return {**{name: getattr(self, name) for name in self.COUNTS},
                "seqs": list(self.seqs), "arrivals": list(self.arrivals),
                "table": [[seq, *table[seq]] for seq in self.seqs]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]
                  ) -> tuple[FeedLog, dict[int, tuple[float, float]]]:
        log = cls(**{name: data[name] for name in cls.COUNTS})
        log.seqs.extend(data["seqs"])
        log.arrivals.extend(data["arrivals"])
        return log, {int(seq): (rx, ts) for seq, rx, ts in data["table"]}

    def receive(self, msg: Mapping[str, Any], arrival: float,
                table: dict[int, tuple[float, float]]) -> None:
        """One message; `table` (shared by all clients) keeps each seq's rx and ts once."""
        seq = int(msg["seq"])
        if msg["type"] == "snapshot":
            self.snapshots += 1
            if msg.get("reason") == "skipped_ahead":
                self.skips += 1
            if self.last_seq is not None and seq < self.last_seq:
                self.disorder += 1
            # A snapshot's seq is the last message it includes: the next is seq + 1.
            self.last_seq = seq
            return
        if self.last_seq is None or seq <= self.last_seq:
            self.disorder += 1
        elif seq > self.last_seq + 1:
            self.gaps += 1
            self.missing += seq - self.last_seq - 1
        self.last_seq = seq if self.last_seq is None else max(seq, self.last_seq)
        rx = msg.get("rx")
        if rx is None:
            return
        self.seqs.append(seq)
        self.arrivals.append(arrival)
        if seq not in table:
            table[seq] = (float(rx), float(msg.get("ts") or rx))


@dataclass
class Screens:
    """Connected clients: their logs, sockets and reader tasks."""

    logs: list[FeedLog]
    sockets: list[aiohttp.ClientWebSocketResponse]
    readers: list[asyncio.Task[None]]

    async def opened(self, within: float = 30.0) -> None:
        """Returns once every client has its first snapshot."""
        deadline = time.monotonic() + within
        while not all(log.snapshots or log.closed for log in self.logs):
            ended = [r for r in self.readers if r.done()]
            if ended or time.monotonic() > deadline:
                why = next((repr(r.exception()) for r in ended if r.exception()), "timeout")
                raise SystemExit(f"not every monitor client got its snapshot: {why}")
            await asyncio.sleep(0.1)

    async def leave(self) -> None:
        for log in self.logs:
            log.leaving = True
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)


async def connect(http: aiohttp.ClientSession, url: str, token: str, clients: int,
                  table: dict[int, tuple[float, float]]) -> Screens:
    """`clients` followers of the feed, returned once each has its first snapshot."""
    logs = [FeedLog(n) for n in range(clients)]
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    screens = Screens(logs, sockets, [
        asyncio.create_task(follow(http, url, token, log, table, sockets)) for log in logs])
    await screens.opened()
    return screens


async def follow(http: aiohttp.ClientSession, url: str, token: str, log: FeedLog,
                 table: dict[int, tuple[float, float]],
                 sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    """One supervisor screen: read the feed until it closes, stamping each arrival."""
    async with http.ws_connect(url, headers={"Authorization": f"Bearer {token}"},
                               autoping=True, max_msg_size=0) as ws:
        sockets.append(ws)
        async for frame in ws:
            arrival = time.time()  # first thing: the stamp is the delivery
            if frame.type == aiohttp.WSMsgType.TEXT:
                log.receive(orjson.loads(frame.data), arrival, table)
            elif frame.type == aiohttp.WSMsgType.ERROR:
                break
        if not log.leaving:
            log.closed = f"{ws.close_code} {ws.exception() or ''}".strip()


# --------------------------------------------------------------------------- pure analysis


def deliveries(logs: Iterable[FeedLog], table: Mapping[int, tuple[float, float]]
               ) -> tuple[list[float], list[float], list[int]]:
    """rx -> client and ts -> client in ms, and each delivery's bootstrap block (by rx)."""
    from_rx: list[float] = []
    from_ts: list[float] = []
    blocks: list[int] = []
    for log in logs:
        for seq, arrival in zip(log.seqs, log.arrivals, strict=True):
            rx, ts = table[seq]
            from_rx.append((arrival - rx) * 1000)
            from_ts.append((arrival - ts) * 1000)
            blocks.append(math.floor(rx / BLOCK_S))
    return from_rx, from_ts, blocks


def fanout_spread(logs: Iterable[FeedLog]) -> list[float]:
    """Per message: the first client's arrival to the last one's, ms (0 with one client)."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for log in logs:
        for seq, arrival in zip(log.seqs, log.arrivals, strict=True):
            first[seq] = min(first.get(seq, arrival), arrival)
            last[seq] = max(last.get(seq, arrival), arrival)
    return [(last[seq] - first[seq]) * 1000 for seq in first]


def intake_ms(table: Mapping[int, tuple[float, float]]) -> list[float]:
    """Per message: Asterisk's `ts` to the service's `rx`, ms (AMI delivery, event queue)."""
    return [(rx - ts) * 1000 for rx, ts in table.values()]


def replay_times(events: Iterable[Mapping[str, Any]], subscribed: frozenset[str]
                 ) -> list[tuple[str, int]]:
    """Feed each subscribed event to a fresh Tracker; (Linkedid, ns in feed()) per event."""
    tracker = Tracker()
    feed, clock = tracker.feed, time.perf_counter_ns
    out: list[tuple[str, int]] = []
    for event in events:
        if event.get("Event") not in subscribed:
            continue
        started = clock()
        feed(dict(event))
        out.append((str(event.get("Linkedid", "")), clock() - started))
    return out


def per_call_ms(times: Iterable[tuple[str, int]]) -> list[float]:
    """The tracker's time summed over each call's events (by Linkedid), ms."""
    sums: dict[str, int] = defaultdict(int)
    for linked, ns in times:
        if linked:
            sums[linked] += ns
    return [ns / 1e6 for ns in sums.values()]


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition as (name, labels, value) per sample line."""
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, labels, value = match.groups()
        out.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return out


def metric_value(samples: Iterable[tuple[str, dict[str, str], float]], name: str,
                 **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    return sum(value for n, have, value in samples
               if n == name and all(have.get(k) == v for k, v in labels.items()))


@dataclass(frozen=True)
class Histogram:
    count: float
    total_s: float
    buckets: dict[float, float]  # upper bound (s) -> cumulative count

    @classmethod
    def read(cls, samples: Sequence[tuple[str, dict[str, str], float]], name: str,
             **labels: str) -> Histogram:
        buckets = {float(have["le"]): value for n, have, value in samples
                   if n == f"{name}_bucket" and "le" in have
                   and all(have.get(k) == v for k, v in labels.items())}
        return cls(metric_value(samples, f"{name}_count", **labels),
                   metric_value(samples, f"{name}_sum", **labels), buckets)

    def __sub__(self, before: Histogram) -> Histogram:
        return Histogram(self.count - before.count, self.total_s - before.total_s,
                         {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()})

    @property
    def mean_ms(self) -> float | None:
        return self.total_s / self.count * 1000 if self.count else None

    def over(self, seconds: float) -> float:
        """Observations above `seconds` (which must be one of the bucket bounds)."""
        return self.count - self.buckets[seconds]


def vm_rss_kib(status: str) -> int:
    """VmRSS from the text of /proc/<pid>/status, in KiB."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line (a kernel thread, or not a status file)")


def per_client_kib(rss_none_kib: int, rss_all_kib: int, clients: int) -> float:
    return (rss_all_kib - rss_none_kib) / clients if clients else 0.0


def verdict(p99_ms: float, interval: tuple[float, float], target_ms: float) -> str:
    """met / missed only when the p99 and its whole interval are on one side of the target."""
    low, high = interval
    if p99_ms <= target_ms and high <= target_ms:
        return "met"
    if p99_ms > target_ms and low > target_ms:
        return "missed"
    return f"cannot tell (interval contains {target_ms:g} ms)"


# --------------------------------------------------------------------------- the run


def service_pid(platform: str) -> int:
    """The pid of this process's child `hotline serve --platform <platform>`."""
    needle = f"serve --platform {platform}"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and needle in command:
            return int(pid)
    raise RuntimeError(f"no child process runs `hotline {needle}`")


def read_rss_kib(pid: int) -> int:
    return vm_rss_kib(Path(f"/proc/{pid}/status").read_text())


async def rss_kib(pid: int, readings: int = 3) -> int:
    """The median of a few VmRSS readings, half a second apart."""
    values = []
    for n in range(readings):
        if n:
            await asyncio.sleep(0.5)
        values.append(read_rss_kib(pid))
    return int(statistics.median(values))


async def scrape(http: aiohttp.ClientSession) -> list[tuple[str, dict[str, str], float]]:
    async with http.get(f"http://{HOST}:{NODES['12345'].http_port}/metrics") as reply:
        return metric_samples(await reply.text())


async def feed_seq(http: aiohttp.ClientSession, token: str) -> int:
    """The feed's last message number now (any read answers it)."""
    async with http.get(f"http://{HOST}:{NODES['12345'].http_port}/api/v1/queues",
                        headers={"Authorization": f"Bearer {token}"}) as reply:
        return int((await reply.json())["seq"])


async def loop_lag(samples: list[float]) -> None:
    """This process's own event-loop lateness (ms): its share of each arrival stamp."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        samples.append((time.perf_counter() - started - LAG_TICK_S) * 1000)


@dataclass
class Run:
    rate: float
    seconds: float
    clients: int
    agents: int
    result: RateResult | None = None
    logs: list[FeedLog] = field(default_factory=list)
    table: dict[int, tuple[float, float]] = field(default_factory=dict)
    probe: FeedLog | None = None  # one more client, in a process of its own
    probe_table: dict[int, tuple[float, float]] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)  # the AMI events captured during the load
    # VmRSS, KiB: before0/beforeN before the load; afterN at its end with the same
    # clients, after0 once they left, againN with N fresh ones.
    rss: dict[str, int] = field(default_factory=dict)
    build: Histogram | None = None
    published: float = 0.0
    final_seq: int = 0
    lag_ms: list[float] = field(default_factory=list)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    service_stalls: str = ""
    load_before: float = 0.0  # 1-minute load average as the load starts (2 cores here)

    @property
    def every_log(self) -> list[FeedLog]:
        return [*self.logs, *([self.probe] if self.probe is not None else [])]

    @property
    def tail_missing(self) -> int:
        """Clients that never got the feed's last message (still connected, idle)."""
        return sum(1 for log in self.every_log
                   if not log.closed and (log.last_seq or 0) < self.final_seq)

    @property
    def broken(self) -> bool:
        return (any(log.gaps or log.disorder for log in self.every_log)
                or self.tail_missing > 0)


class Capture:
    """Keeps the AMI events of one session while `on` (the load), drops the others."""

    def __init__(self, session: AmiSession) -> None:
        self.session, self.on = session, False
        self.events: list[Any] = []
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            event = await self.session.event_queue.get()
            if self.on:
                self.events.append(event)


async def start_probe() -> asyncio.subprocess.Process:
    """One more client in a child process (this file with --probe), once it has its snapshot."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, THIS_FILE, "--probe", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None
    if (await child.stdout.readline()).strip() != b"ready":
        raise SystemExit(f"the probe client did not start (exit {await child.wait()})")
    return child


async def stop_probe(child: asyncio.subprocess.Process
                     ) -> tuple[FeedLog, dict[int, tuple[float, float]]]:
    out, _ = await child.communicate(b"")  # its stdin closes: it leaves and reports
    return FeedLog.from_json(orjson.loads(out.strip().rsplit(b"\n", 1)[-1]))


async def probe_child() -> int:
    """The --probe side: follow the feed until stdin closes, then print what it saw."""
    table: dict[int, tuple[float, float]] = {}
    async with aiohttp.ClientSession() as http:
        screens = await connect(http, MONITOR_URL, Lab().token_for(SUPERVISOR), 1, table)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await screens.leave()
    sys.stdout.buffer.write(orjson.dumps(screens.logs[0].to_json(table)) + b"\n")
    return 0


async def bench(run: Run) -> Run:
    lab = Lab()
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-monitor"
    log_dir.mkdir(parents=True, exist_ok=True)
    observer = Observer()
    info = lab.node_info("12345")
    # One session: the service's subscription (captured for the replay) and the
    # transfer observer's events (which finds answered calls to press for).
    watch = AmiSession("bench-monitor", info.ami_host, info.ami_port, info.ami_user,
                       info.ami_secret, events=sorted(subscribed_events() | set(OBSERVED)),
                       on_event=observer.on_event, queue_size=1_000_000)
    redis = aioredis.from_url(lab.redis_url)
    token = lab.token_for(SUPERVISOR)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(service_processes(log_dir))
        pid = service_pid("12345")
        await watch.start()
        stack.push_async_callback(watch.close)
        await watch.wait_ready(10)
        capture = Capture(watch)
        stack.callback(capture.task.cancel)
        for platform, behaviour in (("12345", {}), ("110", {"hangup_after_ms": TARGET_HANGUP_MS})):
            for index in range(run.agents):
                await stack.enter_async_context(logged_in_agent(lab, platform, index,
                                                                **behaviour))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        # WebSockets on a connector of their own, with no connection limit (default 100).
        ws_http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        presser = Presser(lab, None, http)  # type: ignore[arg-type]  # service path only

        await asyncio.sleep(SETTLE_S)
        run.rss["before0"] = await rss_kib(pid)
        screens = await connect(ws_http, MONITOR_URL, token, run.clients, run.table)
        run.logs = screens.logs
        await asyncio.sleep(SETTLE_S)
        run.rss["beforeN"] = await rss_kib(pid)
        probe = await start_probe()

        print(f"[bench] {run.clients} clients connected; {int(run.rate * run.seconds)} calls "
              f"at {run.rate:g}/s ...", file=sys.stderr, flush=True)
        metrics_before = await scrape(http)
        run.load_before = os.getloadavg()[0]
        cpu_before = {"service12345": cpu_seconds(pid), "bench": cpu_seconds(os.getpid())}
        wall_before = time.monotonic()
        lagger = asyncio.create_task(loop_lag(run.lag_ms))
        capture.on = True
        run.result = await run_rate(lab, observer, presser, redis, rate=run.rate,
                                    calls=int(run.rate * run.seconds), seed=0, only="service")
        print(f"[bench]   {outcome(run.result)}", file=sys.stderr, flush=True)
        await asyncio.sleep(SETTLE_S)  # the last calls' messages
        capture.on = False
        lagger.cancel()
        wall = time.monotonic() - wall_before
        run.cpu_pct = {"service12345": (cpu_seconds(pid) - cpu_before["service12345"]) / wall * 100,
                       "bench": (cpu_seconds(os.getpid()) - cpu_before["bench"]) / wall * 100}
        metrics_after = await scrape(http)
        run.build = (Histogram.read(metrics_after, BUILD_METRIC, platform="12345")
                     - Histogram.read(metrics_before, BUILD_METRIC, platform="12345"))
        run.published = (metric_value(metrics_after, MESSAGES_METRIC, platform="12345")
                         - metric_value(metrics_before, MESSAGES_METRIC, platform="12345"))
        run.service_stalls = await stalls(http)
        run.final_seq = await feed_seq(http, token)
        await asyncio.sleep(1.0)  # every client should be there by now
        run.probe, run.probe_table = await stop_probe(probe)
        run.rss["afterN"] = await rss_kib(pid)

        await screens.leave()
        await asyncio.sleep(SETTLE_S)
        run.rss["after0"] = await rss_kib(pid)
        # Memory a process has once used stays in its RSS when the clients leave, so
        # the after-load reading is 0 clients -> N fresh ones, as before the load.
        fresh = await connect(ws_http, MONITOR_URL, token, run.clients, {})
        await asyncio.sleep(SETTLE_S)
        run.rss["againN"] = await rss_kib(pid)
        await fresh.leave()
    await redis.aclose()
    run.events = capture.events
    return run


def outcome(result: RateResult) -> str:
    errors = [c.error for c in result.calls if c.error]
    bridged = sum(1 for c in result.calls if c.bridged_at is not None)
    return (f"done in {result.wall_s:.1f}s: lost {result.lost} (citizens answered "
            f"{result.citizens_ok}, bridged with 110 {bridged}), SLA missing "
            f"{len(result.sla_missing)}, errors {len(errors)} {errors[:3]}")


# --------------------------------------------------------------------------- report


def _ms(values: Sequence[float], digits: int = 1) -> str:
    if not values:
        return "- | -"
    return f"{percentile(values, 50):.{digits}f} | {percentile(values, 99):.{digits}f}"


@dataclass(frozen=True)
class Delivery:
    """rx -> client and ts -> client of some clients, with the bootstrap interval of p99."""

    from_rx: list[float]
    from_ts: list[float]
    interval: tuple[float, float]

    @classmethod
    def of(cls, logs: Iterable[FeedLog], table: Mapping[int, tuple[float, float]]) -> Delivery:
        from_rx, from_ts, blocks = deliveries(logs, table)
        interval = percentile_interval(from_rx, 99, groups=blocks) if from_rx else (0.0, 0.0)
        return cls(from_rx, from_ts, interval)

    @property
    def p99(self) -> float:
        return percentile(self.from_rx, 99) if self.from_rx else math.nan

    def row(self, title: str) -> str:
        low, high = self.interval
        return f"| {title} | {len(self.from_rx)} | {_ms(self.from_rx)} | {low:.1f} .. {high:.1f} |"

    def verdict(self) -> str:
        return verdict(self.p99, self.interval, TARGET_P99_MS) if self.from_rx else "no samples"


def tracker_baseline(events: Sequence[Any]) -> tuple[list[float], list[float]]:
    """The tracker's feed() per event and per call (ms), replayed on a warm, quiet tracker."""
    subscribed = subscribed_events()
    gc.collect()
    gc.freeze()  # this bench's own samples are not the tracker's garbage to walk
    try:
        replay_times(events, subscribed)  # warm-up: the service's tracker runs warm
        times = replay_times(events, subscribed)
    finally:
        gc.unfreeze()
    return [ns / 1e6 for _, ns in times], per_call_ms(times)


def report(run: Run) -> str:
    """Markdown for BENCHMARKS.md."""
    assert run.result is not None and run.build is not None
    result, build, rss, logs = run.result, run.build, run.rss, run.logs
    print(f"[bench] bootstrap over {len(logs)} clients' deliveries ...", file=sys.stderr,
          flush=True)
    pooled = Delivery.of(logs, run.table)
    probe = Delivery.of([run.probe] if run.probe is not None else [], run.probe_table)
    per_event, per_call = tracker_baseline(run.events)
    counts = sorted(log.messages for log in logs)
    every = run.every_log
    lines = [
        f"**Monitor feed delivery**: {run.clients} WebSocket clients in this bench's process "
        f"on the 12345 service's `/api/v1/monitor` (unfiltered, supervisor token), plus one "
        f"probe client in a process of its own; {result.rate:g} calls/s for {run.seconds:g} s "
        f"of bench_transfer.py's calls, each transferred by the service's one-key press; "
        f"{run.agents} agents per platform. Calls placed {result.placed}, completed "
        f"{result.placed - result.lost} (lost {result.lost}, SLA records missing "
        f"{len(result.sla_missing)}); machine load average {run.load_before:.1f} at the "
        f"start, {result.load_avg:.1f} at the end ({os.cpu_count()} CPUs). Times in ms; the "
        f"interval is a bootstrap of p99 drawing {BLOCK_S * 1000:g} ms blocks of service "
        "time (by `rx`).",
        "",
        "| measure | n | p50 | p99 | p99, 90% interval |",
        "|---|---|---|---|---|",
        pooled.row(f"**delivery `rx` → client, {run.clients} clients (the benchmark)**"),
        probe.row("delivery `rx` → client, the probe in a process of its own"),
        f"| delivery Asterisk's `ts` → client, {run.clients} clients | {len(pooled.from_ts)} "
        f"| {_ms(pooled.from_ts)} | - |",
        f"| service intake, per message: Asterisk's `ts` → `rx` (AMI, the service's event "
        f"queue, feed()) | {len(run.table)} | {_ms(intake_ms(run.table))} | - |",
        f"| fan-out spread: first → last of the {run.clients} clients, per message "
        f"| {len(run.table)} | {_ms(fanout_spread(logs))} | - |",
        f"| baseline: tracker `feed()` per event (replayed here) | {len(per_event)} "
        f"| {_ms(per_event, 3)} | - |",
        f"| baseline: tracker `feed()` per call (sum over its events) | {len(per_call)} "
        f"| {_ms(per_call, 2)} | - |",
        f"| this bench's own loop lag ({LAG_TICK_S * 1000:g} ms timer) | {len(run.lag_ms)} "
        f"| {_ms(run.lag_ms)} | - |",
        "",
        f"- messages per client (live, with `rx`): min {counts[0]}, median "
        f"{statistics.median(counts):g}, max {counts[-1]}; published during the load: "
        f"{run.published:.0f} (`{MESSAGES_METRIC}`)",
        f"- monitor build + fan-out, service side (`{BUILD_METRIC}`, during the load): "
        f"{build.count:.0f} loop turns, mean "
        + (f"{build.mean_ms:.2f} ms" if build.mean_ms is not None else "-")
        + f", over 5 / 25 ms: {build.over(0.005):.0f} / {build.over(0.025):.0f}",
        f"- memory per client (12345 service VmRSS, 0 → {run.clients} idle clients): before "
        f"the load {per_client_kib(rss['before0'], rss['beforeN'], run.clients):.1f} KiB "
        f"({rss['before0'] / 1024:.1f} → {rss['beforeN'] / 1024:.1f} MiB), after it "
        f"{per_client_kib(rss['after0'], rss['againN'], run.clients):.1f} KiB "
        f"({rss['after0'] / 1024:.1f} → {rss['againN'] / 1024:.1f} MiB); at the load's end "
        f"{rss['afterN'] / 1024:.1f} MiB, of which the clients' leaving gave back "
        f"{(rss['afterN'] - rss['after0']) / 1024:.1f} MiB",
        f"- CPU during the load: service12345 {run.cpu_pct['service12345']:.0f} %, this bench "
        f"(clients, observer, presses) {run.cpu_pct['bench']:.0f} % of one core",
        f"- all {len(every)} clients: seq gaps {sum(log.gaps for log in every)} "
        f"({sum(log.missing for log in every)} messages), out of order "
        f"{sum(log.disorder for log in every)}, skipped ahead {sum(log.skips for log in every)}"
        f", disconnected by the service {sum(1 for log in every if log.closed)}, without the "
        f"feed's last message {run.tail_missing}",
        f"- service12345: {run.service_stalls}",
        "",
        f"Target p99 ≤ {TARGET_P99_MS:g} ms (`rx` → client, {run.clients} clients): "
        f"**{pooled.verdict()}**; on the probe alone: {probe.verdict()}"
        + (f". But {result.lost} of {result.placed} calls were lost: the feed did not carry "
           "the load asked for" if result.lost else ""),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=8.0, help="calls per second (default 8)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of calls (default 60): rate x seconds calls")
    parser.add_argument("--clients", type=int, default=100,
                        help="WebSocket clients on the monitor feed (default 100)")
    parser.add_argument("--agents", type=int, default=8,
                        choices=range(1, len(NODES["12345"].agents) + 1),
                        help="agents per platform (the lab has 8)")
    parser.add_argument("--events", type=Path, metavar="FILE",
                        help="also write the AMI events captured during the load as JSON "
                             "Lines (replayable: hotline replay FILE)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.rate * args.seconds < 2 or args.clients < 1:
        parser.error("rate must be > 0, rate x seconds at least 2 calls, clients at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    configure_logging("WARNING")  # stderr: stdout is the markdown (and the probe's report)
    if argv[:1] == ["--probe"]:  # the probe client's child process (see start_probe)
        return asyncio.run(probe_child())
    args = parse_args(argv)
    lab = Lab()
    run = Run(args.rate, args.seconds, args.clients, args.agents)
    with lab.exclusive():
        # A lab that answers is used as it is (other workers share it); else start it.
        if not all(asyncio.run(lab.ready()).values()):
            lab.up(timeout=90)
        asyncio.run(bench(run))
    if args.events:
        with args.events.open("wb") as out:
            out.writelines(orjson.dumps(dict(event)) + b"\n" for event in run.events)
    print(report(run))
    return 1 if run.broken else 0


if __name__ == "__main__":
    sys.exit(main())
