"""Pure statistics for the transfer benchmark: percentiles, overhead and ratio.

Overhead and ratio compare the two paths quantile by quantile (p50 of the
service path against p50 of the raw floor, and so on): the calls of the two
paths are interleaved but are not the same calls, so pairing them one by one
would only add noise.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks.

    With few samples p99 is close to the maximum, which is what a small run can say.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100: {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return ordered[low] * (1 - weight) + ordered[high] * weight


@dataclass(frozen=True)
class Comparison:
    """Service path (a) against raw floor (b) at one quantile, in ms."""

    q: float
    service_ms: float
    raw_ms: float

    @property
    def overhead_ms(self) -> float:
        return self.service_ms - self.raw_ms

    @property
    def ratio(self) -> float:
        return self.service_ms / self.raw_ms if self.raw_ms > 0 else math.inf


def compare(service: Sequence[float], raw: Sequence[float], q: float) -> Comparison:
    return Comparison(q, percentile(service, q), percentile(raw, q))


def meets_target(comparison: Comparison, max_overhead_ms: float, max_ratio: float) -> bool:
    return comparison.overhead_ms <= max_overhead_ms and comparison.ratio <= max_ratio


def overhead_interval(service: Sequence[float], raw: Sequence[float], q: float, *,
                      confidence: float = 0.9, resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the q-th percentile's overhead (service minus raw), in ms.

    How far the same run could have landed by chance: each path is resampled with
    replacement on its own (they are different calls) and the overhead recomputed.
    A target bound inside the interval means this run cannot tell met from missed;
    with 100 calls a path's p99 rests on its two slowest calls. Seeded: the same
    samples give the same interval.
    """
    if not service or not raw:
        raise ValueError("overhead interval of no values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1): {confidence}")
    rng = random.Random(seed)
    overheads = sorted(
        percentile(rng.choices(service, k=len(service)), q)
        - percentile(rng.choices(raw, k=len(raw)), q)
        for _ in range(resamples))
    tail = (1 - confidence) / 2 * 100
    return percentile(overheads, tail), percentile(overheads, 100 - tail)


def percentile_interval(values: Sequence[float], q: float, *,
                        groups: Sequence[Hashable] | None = None, confidence: float = 0.9,
                        resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of one sample's q-th percentile, in the values' own unit.

    How far this run's percentile could have landed by chance. Values that share a
    `groups` label are drawn together: when they are not independent (one message's
    delivery to 100 clients waits on the same loop turns of the same processes),
    resampling them one by one would claim far more precision than the run has.
    Without `groups` every value is its own group (the plain bootstrap). Seeded:
    the same samples give the same interval. Each resample's percentile is exact
    (`percentile` of the resampled values), read off one sort of the sample.
    """
    if not values:
        raise ValueError("percentile interval of no values")
    if groups is not None and len(groups) != len(values):
        raise ValueError(f"{len(groups)} group labels for {len(values)} values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be within (0, 1): {confidence}")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100: {q}")
    labels: Sequence[Hashable] = range(len(values)) if groups is None else groups
    index: dict[Hashable, int] = {}
    owner = [index.setdefault(label, len(index)) for label in labels]
    sizes = [0] * len(index)
    for group in owner:
        sizes[group] += 1
    order = sorted(range(len(values)), key=values.__getitem__)
    ordered = [values[i] for i in order]
    ordered_owner = [owner[i] for i in order]
    rng = random.Random(seed)
    population = range(len(sizes))
    estimates = []
    for _ in range(resamples):
        counts = [0] * len(sizes)
        for group in rng.choices(population, k=len(sizes)):
            counts[group] += 1
        total = sum(map(operator.mul, counts, sizes))
        estimates.append(weighted_percentile(ordered, ordered_owner, counts, q, total=total))
    estimates.sort()
    tail = (1 - confidence) / 2 * 100
    return percentile(estimates, tail), percentile(estimates, 100 - tail)


def weighted_percentile(ordered: Sequence[float], owner: Sequence[int],
                        counts: Sequence[int], q: float, *, total: int | None = None) -> float:
    """`percentile(expanded, q)` where `expanded` holds `ordered[i]` `counts[owner[i]]` times.

    `ordered` is sorted ascending; `owner[i]` is the group of `ordered[i]`; `total`
    is len(expanded) when the caller knows it. Walks in from the nearer end only as
    far as the quantile, without building `expanded`.
    """
    if total is None:
        total = sum(counts[group] for group in owner)
    if total == 0:
        raise ValueError("percentile of no values")
    position = (total - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    # Indices into `expanded` counted from the end the walk starts at.
    if q >= 50:
        steps, near, far = range(len(ordered) - 1, -1, -1), total - 1 - high, total - 1 - low
    else:
        steps, near, far = range(len(ordered)), low, high
    seen, at_near, at_far = 0, None, 0.0
    for i in steps:
        seen += counts[owner[i]]
        if at_near is None and seen > near:
            at_near = ordered[i]
        if seen > far:
            at_far = ordered[i]
            break
    assert at_near is not None
    at_low, at_high = (at_far, at_near) if q >= 50 else (at_near, at_far)
    return at_low * (1 - weight) + at_high * weight
