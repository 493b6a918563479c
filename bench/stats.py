"""Pure statistics for the transfer benchmark: percentiles, overhead and ratio.

Overhead and ratio compare the two paths quantile by quantile (p50 of the
service path against p50 of the raw floor, and so on): the calls of the two
paths are interleaved but are not the same calls, so pairing them one by one
would only add noise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
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
