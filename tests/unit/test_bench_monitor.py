"""The monitor benchmark's pure parts: seq checks, deliveries, metrics, RSS, verdict, and
the bootstrap interval of one sample's percentile (bench/stats.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench import bench_monitor as bm
from bench.stats import percentile, percentile_interval, weighted_percentile
from telephony.replay import load_events

FIXTURE = (Path(__file__).resolve().parents[1] / "fixtures" / "ami"
           / "lab_blind_transfer_cross_trunk.jsonl")


def _msg(seq: int, kind: str = "call", rx: float | None = 100.0, **extra: object) -> dict:
    return {"v": 1, "type": kind, "seq": seq, "ts": 99.0, "rx": rx, **extra}


# --------------------------------------------------------------------------- one client


def test_a_clean_feed_has_no_gap_and_keeps_each_seq_once_in_the_table() -> None:
    log, table = bm.FeedLog(0), {}
    log.receive({"type": "snapshot", "seq": 7, "reason": "connect"}, 1.0, table)
    for seq in (8, 9, 10):
        log.receive(_msg(seq, rx=100.0 + seq), 200.0 + seq, table)
    other = bm.FeedLog(1)
    other.receive({"type": "snapshot", "seq": 7, "reason": "connect"}, 1.0, table)
    other.receive(_msg(8, rx=555.0), 300.0, table)  # a second client does not overwrite
    assert (log.gaps, log.missing, log.disorder, log.skips, log.snapshots) == (0, 0, 0, 0, 1)
    assert list(log.seqs) == [8, 9, 10] and log.messages == 3
    assert list(log.arrivals) == [208.0, 209.0, 210.0]
    assert table == {8: (108.0, 99.0), 9: (109.0, 99.0), 10: (110.0, 99.0)}
    assert log.last_seq == 10


def test_gaps_duplicates_and_messages_before_the_snapshot_are_counted() -> None:
    log, table = bm.FeedLog(0), {}
    log.receive(_msg(3), 1.0, table)  # no snapshot first
    assert log.disorder == 1
    log.receive(_msg(4), 1.0, table)
    log.receive(_msg(7), 1.0, table)  # 5 and 6 missing
    log.receive(_msg(7), 1.0, table)  # duplicate
    log.receive(_msg(6), 1.0, table)  # late
    assert (log.gaps, log.missing, log.disorder) == (1, 2, 3)
    assert log.last_seq == 7  # a late one does not move the expectation back
    log.receive(_msg(8), 1.0, table)
    assert (log.gaps, log.disorder) == (1, 3)


def test_a_skip_ahead_snapshot_is_a_skip_not_a_gap_and_null_rx_is_not_timed() -> None:
    log, table = bm.FeedLog(0), {}
    log.receive({"type": "snapshot", "seq": 1, "reason": "connect"}, 1.0, table)
    log.receive(_msg(2), 1.0, table)
    log.receive({"type": "snapshot", "seq": 2500, "reason": "skipped_ahead"}, 2.0, table)
    log.receive(_msg(2501), 2.0, table)
    log.receive(_msg(2502, kind="reset", rx=None), 2.0, table)
    assert (log.gaps, log.disorder, log.skips, log.snapshots) == (0, 0, 1, 2)
    assert list(log.seqs) == [2, 2501]  # the reset has no rx: checked, not timed
    assert log.last_seq == 2502


def test_a_probe_log_survives_its_trip_through_json() -> None:
    log, table = bm.FeedLog(-1), {}
    log.receive({"type": "snapshot", "seq": 1, "reason": "connect"}, 1.0, table)
    log.receive(_msg(2, rx=10.5), 10.75, table)
    log.receive(_msg(4, rx=11.0), 11.5, table)
    log.closed = "4008 too slow"
    back, back_table = bm.FeedLog.from_json(bm.orjson.loads(bm.orjson.dumps(log.to_json(table))))
    assert (back.index, back.gaps, back.missing, back.last_seq, back.closed) == (
        -1, 1, 1, 4, "4008 too slow")
    assert list(back.seqs) == [2, 4] and list(back.arrivals) == [10.75, 11.5]
    assert back_table == table


# --------------------------------------------------------------------------- analysis


def test_deliveries_are_arrival_minus_rx_and_ts_with_blocks_of_service_time() -> None:
    table = {1: (100.01, 100.0), 2: (100.05, 100.0), 3: (100.25, 100.2)}
    a, b = bm.FeedLog(0), bm.FeedLog(1)
    for log, delay in ((a, 0.002), (b, 0.006)):
        for seq, (rx, _) in table.items():
            log.seqs.append(seq)
            log.arrivals.append(rx + delay)
    from_rx, from_ts, blocks = bm.deliveries([a, b], table)
    assert from_rx == pytest.approx([2, 2, 2, 6, 6, 6])
    assert from_ts == pytest.approx([12, 52, 52, 16, 56, 56])
    assert blocks == [1000, 1000, 1002, 1000, 1000, 1002]  # by rx, BLOCK_S = 0.1
    assert bm.fanout_spread([a, b]) == pytest.approx([4, 4, 4])
    assert bm.fanout_spread([a]) == [0.0, 0.0, 0.0]
    assert bm.intake_ms(table) == pytest.approx([10, 50, 50])


def test_the_replay_times_every_subscribed_event_and_sums_them_per_call() -> None:
    events = list(load_events(FIXTURE))
    subscribed = bm.subscribed_events()
    assert {"UserEvent", "FullyBooted", "BridgeEnter", "QueueMemberStatus"} <= subscribed
    times = bm.replay_times(events, subscribed)
    assert len(times) == sum(1 for e in events if e.get("Event") in subscribed)
    assert all(ns >= 0 for _, ns in times)
    calls = {linked for linked, _ in times if linked}
    per_call = bm.per_call_ms(times)
    assert len(per_call) == len(calls)
    assert sum(per_call) == pytest.approx(sum(ns for linked, ns in times if linked) / 1e6)
    assert bm.per_call_ms([("a", 1_000_000), ("a", 500_000), ("", 9), ("b", 2)]) == [1.5, 2e-6]


def _exposition() -> str:
    registry = CollectorRegistry()
    build = Histogram("hotline_monitor_build_seconds", "build", ["platform"],
                      buckets=(0.005, 0.025), registry=registry)
    messages = Counter("hotline_monitor_messages", "messages", ["platform"], registry=registry)
    for seconds in (0.001, 0.002, 0.01, 0.03):
        build.labels(platform="12345").observe(seconds)
    build.labels(platform="110").observe(0.5)
    messages.labels(platform="12345").inc(7)
    return generate_latest(registry).decode()


def test_metrics_are_read_from_prometheus_text_by_name_and_labels() -> None:
    samples = bm.metric_samples(_exposition() + 'odd_metric{a="x\\"y",b="z"} 2.5\n')
    assert bm.metric_value(samples, "hotline_monitor_messages_total", platform="12345") == 7
    assert bm.metric_value(samples, "hotline_monitor_messages_total", platform="110") == 0
    assert bm.metric_value(samples, "odd_metric", a='x\\"y') == 2.5
    hist = bm.Histogram.read(samples, "hotline_monitor_build_seconds", platform="12345")
    assert hist.count == 4 and hist.total_s == pytest.approx(0.043)
    assert hist.mean_ms == pytest.approx(10.75)
    assert (hist.over(0.005), hist.over(0.025)) == (2, 1)
    earlier = bm.Histogram(1, 0.001, {0.005: 1, 0.025: 1, float("inf"): 1})
    diff = hist - earlier
    assert (diff.count, diff.over(0.005), diff.over(0.025)) == (3, 2, 1)
    assert diff.total_s == pytest.approx(0.042)
    assert bm.Histogram(0, 0.0, {}).mean_ms is None


def test_rss_is_read_from_proc_status_and_shared_out_per_client() -> None:
    status = "Name:\thotline\nVmPeak:\t  90000 kB\nVmRSS:\t   62848 kB\nThreads:\t3\n"
    assert bm.vm_rss_kib(status) == 62848
    with pytest.raises(ValueError):
        bm.vm_rss_kib("Name:\tkthreadd\n")
    assert bm.vm_rss_kib(Path("/proc/self/status").read_text()) > 0
    assert bm.per_client_kib(60_000, 61_700, 100) == 17.0
    assert bm.per_client_kib(60_000, 61_700, 0) == 0.0


def test_the_verdict_needs_the_whole_interval_on_one_side_of_the_target() -> None:
    assert bm.verdict(15.0, (12.0, 18.0), 20.0) == "met"
    assert bm.verdict(25.0, (21.0, 30.0), 20.0) == "missed"
    assert bm.verdict(19.0, (15.0, 24.0), 20.0).startswith("cannot tell")
    assert bm.verdict(21.0, (18.0, 24.0), 20.0) == "cannot tell (interval contains 20 ms)"
    assert bm.verdict(20.0, (20.0, 20.0), 20.0) == "met"  # "≤ 20 ms"


def test_cli_defaults_are_the_issue_s_run() -> None:
    args = bm.parse_args([])
    assert (args.rate, args.seconds, args.clients, args.agents) == (8.0, 60.0, 100, 8)
    with pytest.raises(SystemExit):
        bm.parse_args(["--rate", "0"])
    with pytest.raises(SystemExit):
        bm.parse_args(["--clients", "0"])


# --------------------------------------------------------------------------- bench/stats.py


def test_weighted_percentile_equals_percentile_of_the_expanded_sample() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        n = rng.randint(1, 25)
        groups = rng.randint(1, n)
        ordered = sorted(rng.choice([rng.random(), 1.0, 2.0]) for _ in range(n))
        owner = [rng.randrange(groups) for _ in range(n)]
        counts = [rng.randint(0, 3) for _ in range(groups)]
        expanded = [v for v, g in zip(ordered, owner, strict=True) for _ in range(counts[g])]
        if not expanded:
            with pytest.raises(ValueError):
                weighted_percentile(ordered, owner, counts, 50)
            continue
        q = rng.choice([0, 1, 49.9, 50, 90, 99, 100, rng.uniform(0, 100)])
        assert weighted_percentile(ordered, owner, counts, q) == percentile(expanded, q)
        assert weighted_percentile(ordered, owner, counts, q,
                                   total=len(expanded)) == percentile(expanded, q)


def test_percentile_interval_is_exact_without_spread_and_covers_the_true_p99() -> None:
    assert percentile_interval([4.0] * 300, 99) == (4.0, 4.0)
    rng = random.Random(3)
    values = [rng.expovariate(1.0) for _ in range(5000)]
    low, high = percentile_interval(values, 99)
    assert low < 4.605 < high  # the exponential's p99 is ln(100)
    assert low <= percentile(values, 99) <= high
    assert percentile_interval(values, 99) == (low, high)  # seeded
    assert percentile_interval(values, 99, seed=1) != (low, high)


def test_grouped_values_are_drawn_together_so_the_interval_is_honest_about_them() -> None:
    # 100 clients each see the same 200 messages with nearly the same delay: 20,000
    # values but only 200 independent draws. Resampling values one by one would
    # claim a far narrower p99 interval than resampling messages.
    rng = random.Random(5)
    delays = [rng.expovariate(1.0) for _ in range(200)]
    values = [d + rng.uniform(0, 0.01) for d in delays for _ in range(100)]
    groups = [m for m in range(200) for _ in range(100)]
    plain = percentile_interval(values, 99, resamples=300)
    grouped = percentile_interval(values, 99, groups=groups, resamples=300)
    assert grouped[1] - grouped[0] > 2 * (plain[1] - plain[0])
    # Groups of one are the plain bootstrap.
    assert percentile_interval(delays, 99, groups=list(range(200)), resamples=300) == (
        percentile_interval(delays, 99, resamples=300))


def test_percentile_interval_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile_interval([], 99)
    with pytest.raises(ValueError):
        percentile_interval([1.0, 2.0], 99, groups=["a"])
    with pytest.raises(ValueError):
        percentile_interval([1.0], 99, confidence=0.0)
    with pytest.raises(ValueError):
        percentile_interval([1.0], 101)
