"""The transfer benchmark's pure parts: percentiles, comparison, the bridge observer, report."""

from __future__ import annotations

import math
import random
import time

import pytest

from bench import bench_transfer as bt
from bench.stats import Comparison, compare, meets_target, overhead_interval, percentile


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    random.Random(4).shuffle(values)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([10.0, 20.0], 25) == pytest.approx(12.5)


def test_percentile_refuses_no_values_and_bad_quantiles() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_overhead_and_ratio_compare_the_same_quantile_of_each_path() -> None:
    service = [12.0, 14.0, 16.0, 40.0]
    raw = [10.0, 10.0, 12.0, 30.0]
    p50 = compare(service, raw, 50)
    assert (p50.service_ms, p50.raw_ms) == (15.0, 11.0)
    assert p50.overhead_ms == pytest.approx(4.0)
    assert p50.ratio == pytest.approx(15 / 11)
    assert Comparison(99, 5.0, 0.0).ratio == math.inf


def test_target_needs_both_overhead_and_ratio() -> None:
    assert meets_target(Comparison(99, 24.0, 20.0), 5.0, 1.3)
    assert not meets_target(Comparison(99, 26.0, 20.0), 5.0, 1.3)  # overhead 6 ms
    assert not meets_target(Comparison(99, 4.0, 2.0), 5.0, 1.3)  # ratio 2


def _enter(bridge: str, uid: str, channel: str, ticket: str = "") -> dict:
    event = {"Event": "BridgeEnter", "BridgeUniqueid": bridge, "Uniqueid": uid,
             "Channel": channel}
    if ticket:
        event["ChanVariable"] = [f"TICKET_ID={ticket}", "HOTLINE_OP="]
    return event


def test_overhead_interval_is_exact_without_spread_and_widens_with_it() -> None:
    # No spread: every resample has the same p99, so the interval is the point.
    assert overhead_interval([30.0] * 50, [27.0] * 50, 99) == (3.0, 3.0)
    rng = random.Random(7)
    raw = [rng.gauss(30, 3) for _ in range(200)]
    service = [v + 2 for v in raw]  # the same calls 2 ms slower
    low, high = overhead_interval(service, raw, 50)
    assert low < 2.0 < high  # the true shift is inside
    tail_low, tail_high = overhead_interval(service, raw, 99)
    assert tail_high - tail_low > high - low  # p99 rests on few calls: wider
    # Seeded: the same samples, the same interval; a rare 60 ms outlier widens it.
    assert overhead_interval(service, raw, 99) == (tail_low, tail_high)
    _, spiky_high = overhead_interval([*service, 60.0, 61.0], raw, 99)
    assert spiky_high > tail_high


def test_overhead_interval_refuses_no_values_and_bad_confidence() -> None:
    with pytest.raises(ValueError):
        overhead_interval([], [1.0], 99)
    with pytest.raises(ValueError):
        overhead_interval([1.0], [1.0], 99, confidence=1.0)


def test_observer_finds_answered_calls_and_times_the_caller_reaching_the_trunk() -> None:
    obs = bt.Observer()
    obs.on_event(_enter("b1", "c1", "PJSIP/citizen-00000001", ticket="T-1"))
    assert obs.answered.empty()  # alone in the bridge: not answered yet
    obs.on_event(_enter("b1", "a1", "PJSIP/agent12345-2-00000002"))
    call = obs.answered.get_nowait()
    assert (call.caller_uid, call.caller_channel, call.ticket_id) == (
        "c1", "PJSIP/citizen-00000001", "T-1")
    assert call.agent_channel == "PJSIP/agent12345-2-00000002"
    assert call.agent_endpoint == "agent12345-2"

    obs.on_event({"Event": "BridgeLeave", "BridgeUniqueid": "b1", "Uniqueid": "c1"})
    obs.on_event({"Event": "BlindTransfer", "TransfereeUniqueid": "c1"})
    assert call.transferred_at is None  # no press yet: nothing is timed
    call.pressed_at = 100.0
    obs.on_event({"Event": "BlindTransfer", "TransfereeUniqueid": "c1"})
    obs.on_event(_enter("b2", "t1", "PJSIP/trunk110-00000003"))
    obs.on_event(_enter("b2", "c1", "PJSIP/citizen-00000001"))
    assert call.bridged.is_set()
    assert call.transferred_at is not None and call.bridged_at is not None
    assert call.bridged_at >= call.transferred_at
    assert call.press_to_bridged_ms == pytest.approx((call.bridged_at - 100.0) * 1000)
    assert obs.answered.empty()  # the trunk bridge is not a new answered call


def test_observer_marks_each_step_after_execution_on_both_nodes() -> None:
    obs = bt.Observer()
    obs.on_event(_enter("b1", "c1", "PJSIP/citizen-00000001", ticket="T-1"))
    obs.on_event(_enter("b1", "a1", "PJSIP/agent12345-2-00000002"))
    call = obs.answered.get_nowait()
    tagged = {"ChanVariable": ["TICKET_ID=T-1"]}
    # Before the press nothing is marked, on either node.
    obs.on_event({"Event": "DialBegin", "Uniqueid": "c1"})
    obs.on_event_110({"Event": "DialBegin", "Uniqueid": "x", **tagged})
    assert call.marks == {}
    call.pressed_at = 0.0
    obs.on_event({"Event": "BlindTransfer", "TransfereeUniqueid": "c1"})
    obs.on_event({"Event": "DialBegin", "Uniqueid": "c1"})
    obs.on_event_110({"Event": "Newchannel", "Uniqueid": "n1",
                      "Channel": "PJSIP/trunk12345-00000009"})
    obs.on_event_110({"Event": "Newchannel", "Uniqueid": "n2", "Channel": "PJSIP/other-1"})
    obs.on_event_110({"Event": "DialBegin", "Uniqueid": "n1", **tagged})
    obs.on_event_110({"Event": "DialEnd", "Uniqueid": "n1", "DialStatus": "BUSY", **tagged})
    assert "answer_agent110" not in call.marks  # only an answer counts
    obs.on_event_110({"Event": "DialEnd", "Uniqueid": "n1", "DialStatus": "ANSWER", **tagged})
    obs.on_event({"Event": "DialEnd", "Uniqueid": "c1", "DialStatus": "ANSWER"})
    obs.on_event(_enter("b2", "t1", "PJSIP/trunk110-00000003"))
    obs.on_event(_enter("b2", "c1", "PJSIP/citizen-00000001"))
    assert set(call.marks) == set(bt.SEGMENTS)
    assert obs.arrived110.keys() == {"n1"}  # another peer's channel is not a trunk arrival
    obs.on_event_110({"Event": "Hangup", "Uniqueid": "n1"})
    assert not obs.arrived110
    call.path = "service"
    result = bt.RateResult(1.0, 1, [call], citizens_ok=1, sla_missing=[], wall_s=1.0)
    text = bt.segments(result)
    assert text.count("->") == len(bt.SEGMENTS) - 1
    assert "transferred->dial_trunk " in text and text.endswith("| -")  # no raw calls


def test_observer_times_with_asterisks_own_stamps_when_events_carry_them() -> None:
    obs = bt.Observer()
    obs.on_event(_enter("b1", "c1", "PJSIP/citizen-00000001", ticket="T-1"))
    obs.on_event(_enter("b1", "a1", "PJSIP/agent12345-2-00000002"))
    call = obs.answered.get_nowait()
    call.pressed_at = 1000.000
    obs.on_event({"Event": "BlindTransfer", "TransfereeUniqueid": "c1",
                  "Timestamp": "1000.004500"})
    obs.on_event({**_enter("b2", "t1", "PJSIP/trunk110-00000003"), "Timestamp": "1000.020"})
    obs.on_event({**_enter("b2", "c1", "PJSIP/citizen-00000001"), "Timestamp": "1000.031250"})
    # However late the events arrive here, the times are Asterisk's.
    assert call.press_to_transfer_ms == pytest.approx(4.5)
    assert call.press_to_bridged_ms == pytest.approx(31.25)


def test_asterisk_time_falls_back_to_the_arrival_time() -> None:
    assert bt.asterisk_time({"Timestamp": "1795965861.238167"}) == 1795965861.238167
    before = time.time()
    assert before <= bt.asterisk_time({}) <= time.time()
    assert before <= bt.asterisk_time({"Timestamp": "soon"}) <= time.time()


def test_observer_ignores_a_bridge_without_exactly_one_caller() -> None:
    obs = bt.Observer()
    obs.on_event(_enter("b1", "a1", "PJSIP/agent12345-1-00000001"))
    obs.on_event(_enter("b1", "t1", "PJSIP/trunk110-00000002"))
    assert obs.answered.empty() and not obs.calls


def _call(path: str, press_ms: float, bridged_ms: float | None) -> bt.Call:
    call = bt.Call("u", "PJSIP/c-1", "PJSIP/agent12345-1-1", "T", path=path, pressed_at=0.0)
    call.bridged_at = None if bridged_ms is None else bridged_ms / 1000
    call.transferred_at = press_ms / 1000
    return call


def test_report_shows_both_paths_overhead_ratio_and_the_clean_rate() -> None:
    clean = bt.RateResult(1.0, 4, [_call("service", 5, 30), _call("raw", 3, 28),
                                   _call("service", 6, 31), _call("raw", 3, 29)],
                          citizens_ok=4, sla_missing=[], wall_s=4.0)
    lossy = bt.RateResult(8.0, 4, [_call("service", 5, 30), _call("raw", 3, None),
                                   _call("service", 6, 31), _call("raw", 3, 29)],
                          citizens_ok=4, sla_missing=["T-9"], wall_s=4.0, load_avg=1.5)
    assert clean.clean and clean.lost == 0
    assert not lossy.clean and lossy.lost == 1
    text = bt.report([clean, lossy], agents=4)
    row = next(line for line in text.splitlines() if line.startswith("| 1 | 2/2"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "30.5 / 31.0" and cells[3] == "28.5 / 29.0"
    assert cells[4] == "2.0 / 2.0" and cells[5] == "1.0 .. 3.0"
    assert cells[6] == "1.07 / 1.07" and cells[7] == "yes"
    assert "| 8 | 2/1 |" in text and "too few samples" in text
    assert "| 8 | 4 | 1 | 1 | 4.0 | 1.5 |" in text
    lossy_full = bt.RateResult(8.0, 2, [_call("service", 5, 30), _call("raw", 3, 28),
                                        _call("service", 6, 31), _call("raw", 3, 29)],
                               citizens_ok=1, sla_missing=[], wall_s=4.0)
    assert "no (calls lost)" in bt.report([lossy_full], agents=4)
    assert text.endswith("**1 calls/s**")


def test_paths_come_in_balanced_pairs_of_seeded_random_order() -> None:
    order = bt.path_order(400, seed=3)
    pairs = [tuple(order[i:i + 2]) for i in range(0, 400, 2)]
    assert set(pairs) == {("service", "raw"), ("raw", "service")}  # each pair: one of each
    # Not a, b, a, b: over 8 agents served in turn, every agent meets both paths.
    assert {order[i] for i in range(0, 400, 8)} == {"service", "raw"}
    assert bt.path_order(400, seed=3) == order and bt.path_order(400, seed=4) != order
    assert bt.path_order(5, seed=1).count("service") in (2, 3)
    assert bt.path_order(3, seed=1, only="raw") == ["raw"] * 3


def test_cli_defaults_and_rate_call_pairing() -> None:
    args = bt.parse_args([])
    assert args.rate == list(bt.DEFAULT_RATES) and args.calls == list(bt.DEFAULT_CALLS)
    args = bt.parse_args(["--rate", "1", "--calls", "20"])
    assert (args.rate, args.calls) == ([1.0], [20])
    args = bt.parse_args(["--rate", "2", "--rate", "5", "--calls", "30"])
    assert args.calls == [30, 30]
    with pytest.raises(SystemExit):
        bt.parse_args(["--rate", "1", "--rate", "2", "--calls", "3", "--calls", "4",
                       "--calls", "5"])


def test_executed_is_judged_on_overhead_alone_and_bridged_on_both() -> None:
    # executed: service 5-6 ms vs raw 3 ms (overhead 2-3 ms, ratio ~1.8): met.
    # bridged: 30-31 vs 28-29 ms: met. The same executed times with a 10 ms gap: not met.
    result = bt.RateResult(1.0, 4, [_call("service", 5, 30), _call("raw", 3, 28),
                                    _call("service", 6, 31), _call("raw", 3, 29)],
                           citizens_ok=4, sla_missing=[], wall_s=4.0)
    rows = [line for line in bt.report([result], agents=4).splitlines()
            if line.startswith("| 1 | 2/2")]
    verdicts = [row.rstrip(" |").rsplit("|", 1)[1].strip() for row in rows]
    assert verdicts == ["yes", "yes"]  # bridged (ratio 1.07), executed (ratio 1.83: not judged)
    slow = bt.RateResult(1.0, 4, [_call("service", 13, 30), _call("raw", 3, 28),
                                  _call("service", 14, 31), _call("raw", 3, 29)],
                         citizens_ok=4, sla_missing=[], wall_s=4.0)
    rows = [line for line in bt.report([slow], agents=4).splitlines()
            if line.startswith("| 1 | 2/2")]
    assert rows[1].rstrip(" |").endswith("no")
