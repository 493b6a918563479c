"""Property tests: random interleavings of concurrent call scenarios.

Each scenario is a fixture renumbered apart (its own uniqueids, bridges and
ticket), so interleaving them must not change what happens to any of them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.replay import load_events, renumber
from telephony.tracker import Tracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
SCENARIOS = {
    p.stem: load_events(p)
    for p in sorted(FIXTURES.glob("*.jsonl"))
    # the real recordings too, but not the 600-event load run (too slow to permute)
    if not p.name.endswith(".expected.jsonl") and p.stem != "lab_load_20"
}
NAMES = sorted(SCENARIOS)


def kinds_alone(name: str) -> Counter[str]:
    tracker = Tracker()
    return Counter(e.kind for ev in SCENARIOS[name] for e in tracker.feed(ev))


ALONE = {name: kinds_alone(name) for name in NAMES}


@st.composite
def interleavings(draw, max_scenarios: int = 5):
    picks = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=max_scenarios))
    streams = [list(renumber(SCENARIOS[name], f"s{i}", ts_shift=draw(st.floats(0, 30))))
               for i, name in enumerate(picks)]
    order = draw(st.permutations([i for i, s in enumerate(streams) for _ in s]))
    cursors = [0] * len(streams)
    merged = []
    for i in order:  # a multiset permutation = an interleaving that keeps each stream's order
        merged.append(streams[i][cursors[i]])
        cursors[i] += 1
    return picks, merged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(interleavings())
def test_interleaved_calls_behave_as_if_alone(case):
    picks, events = case
    tracker = Tracker()
    got: Counter[str] = Counter()
    for event in events:
        got.update(e.kind for e in tracker.feed(event))
        assert tracker.check_invariants() == []
    assert got == sum((ALONE[name] for name in picks), Counter())
    assert (tracker.calls, tracker.legs, tracker.bridges, tracker.conferences) == ({}, {}, {}, {})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(interleavings(), st.data())
def test_lost_duplicated_and_reordered_events_never_break_the_model(case, data):
    _, events = case
    # Damage the stream: drop some events, repeat some, swap some neighbours.
    damaged = []
    for event in events:
        action = data.draw(st.sampled_from(["keep"] * 6 + ["drop", "dup", "swap"]))
        if action == "dup":
            damaged += [event, event]
        elif action == "swap" and damaged:
            damaged.insert(len(damaged) - 1, event)
        elif action == "keep":
            damaged.append(event)
    tracker = Tracker()
    for event in damaged:
        tracker.feed(event)
        assert tracker.check_invariants() == []
    for bridge in tracker.bridges.values():
        assert bridge.members  # empty bridges are dropped, so nothing grows without bound
