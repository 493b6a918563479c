"""A small statistical second opinion: character n-gram naive Bayes over desks.

Rules decide emergencies they recognise; this model covers the long tail of wording
no rule lists ("嗓子发紧", "水挺深的", "物业推来推去"). It is trained in a few ms from
labelled lines (catalogue examples and the TSV sets) and is pure: the caller reads
the files (`training.py`).

Naive Bayes on a few hundred short lines is overconfident, so the log-likelihood is
averaged per n-gram (a temperature) before the softmax. Priors are uniform: the sets
hold more 12345 lines than any desk, and that imbalance must not pull doubtful
emergencies towards 12345.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from routing.catalogue import EMERGENCY_PLATFORMS

LABELS = ("12345", "110", "119", "120", "122")  # utilities are 12345 work orders here
ORDERS = (1, 2, 3)  # character n-gram lengths
ALPHA = 0.3  # additive smoothing
# A sharper softmax than raw averaging: mean log-ratio * SHARPNESS.
SHARPNESS = 8.0
# P(emergency) comes from a second, two-class table (12345 vs any emergency desk). A
# danger whose clauses point at different desks (gas smell -> 119, nausea -> 120) must
# not lose to 12345 because its evidence is split five ways.
POOLED = True
_SPLIT = re.compile(r"[，。！？；、,.!?;…\s:：“”\"'（）()]+")
# Fillers every caller says; they carry no desk information.
_FILLER = frozenset("的了吗呢吧啊呀哦嗯喂我你他她它们是在有就也都这那个")


def features(text: str) -> list[str]:
    """Character 1-3 grams inside each clause; single fillers are dropped."""
    out: list[str] = []
    for clause in _SPLIT.split(text):
        if not clause:
            continue
        for n in ORDERS:
            for i in range(len(clause) - n + 1):
                gram = clause[i:i + n]
                if n == 1 and gram in _FILLER:
                    continue
                out.append(gram)
    return out


@dataclass(frozen=True)
class Opinion:
    probs: dict[str, float]  # label -> posterior
    top: str
    grams: tuple[str, ...] = ()  # the known n-grams of the text
    model: NgramModel | None = field(default=None, repr=False, compare=False)
    danger: float | None = None  # P(emergency) from the pooled two-class table

    @property
    def evidence(self) -> tuple[str, ...]:
        """N-grams that pushed hardest towards `top` (computed only for a reason)."""
        return self.model.evidence(self.grams, self.top) if self.model else ()

    @property
    def p_emergency(self) -> float:
        if self.danger is not None:
            return self.danger
        return sum(p for label, p in self.probs.items() if label in EMERGENCY_PLATFORMS)

    @property
    def top_emergency(self) -> str:
        return max((lb for lb in self.probs if lb in EMERGENCY_PLATFORMS),
                   key=lambda lb: (self.probs[lb], lb == "110"))

    def describe(self) -> str:
        p = ", ".join(f"{lb}:{self.probs[lb]:.2f}" for lb in
                      sorted(self.probs, key=lambda lb: -self.probs[lb])[:3])
        return f"model {p} (top n-grams {'/'.join(self.evidence)})"


class NgramModel:
    def __init__(self, log_prob: dict[str, tuple[float, ...]], size: int) -> None:
        # gram -> log P(gram | class): the five LABELS, then the pooled pair
        # (12345, any emergency desk). One row per gram keeps prediction to one pass.
        self._log_prob = log_prob
        self.size = size  # training lines

    @classmethod
    def train(cls, pairs: Iterable[tuple[str, str]]) -> NgramModel:
        counts: dict[str, Counter[str]] = {label: Counter() for label in LABELS}
        size = 0
        for text, label in pairs:
            if label not in counts:
                continue
            # Presence, not frequency: a long line must not outvote a short one.
            counts[label].update(set(features(text)))
            size += 1
        danger: Counter[str] = Counter()
        for label in LABELS[1:]:
            danger.update(counts[label])
        vocab = set().union(*counts.values())
        desks = _table(vocab, [counts[lb] for lb in LABELS])
        pooled = _table(vocab, [counts["12345"], danger])
        return cls({g: desks[g] + pooled[g] for g in vocab}, size)

    def predict(self, text: str) -> Opinion:
        grams = tuple(g for g in set(features(text)) if g in self._log_prob)
        if not grams:
            even = 1.0 / len(LABELS)
            return Opinion(dict.fromkeys(LABELS, even), "110")
        # zip(*rows) sums each class's column in C: this is the hot path.
        sums = [sum(column) for column in zip(*(self._log_prob[g] for g in grams), strict=True)]
        scale = SHARPNESS / len(grams)
        n = len(LABELS)
        probs = dict(zip(LABELS, _softmax(sums[:n], scale), strict=True))
        top = max(LABELS, key=lambda lb: probs[lb])
        danger = _softmax(sums[n:], scale)[1] if POOLED else None
        return Opinion(probs, top, grams, self, danger)

    def evidence(self, grams: tuple[str, ...], label: str, k: int = 3) -> tuple[str, ...]:
        """N-grams (2+ chars) whose likelihood favours `label` most over the rest."""
        at = LABELS.index(label)

        def lift(gram: str) -> float:
            row = self._log_prob[gram][:len(LABELS)]
            return row[at] - max(v for i, v in enumerate(row) if i != at)
        ranked = sorted((g for g in grams if len(g) > 1), key=lambda g: (-lift(g), g))
        return tuple(g for g in ranked[:k] if lift(g) > 0)


def _table(vocab: set[str], counts: list[Counter[str]]) -> dict[str, tuple[float, ...]]:
    """gram -> smoothed log P(gram | class) per class; uniform class priors."""
    totals = [sum(c.values()) + ALPHA * (len(vocab) + 1) for c in counts]
    return {gram: tuple(math.log((c[gram] + ALPHA) / t) for c, t in zip(counts, totals,
                                                                          strict=True))
            for gram in vocab}


def _softmax(scores: list[float], scale: float) -> list[float]:
    """Tempered softmax: `scale` turns summed log-likelihoods into a per-n-gram mean,
    sharpened."""
    best = max(scores)
    weights = [math.exp((x - best) * scale) for x in scores]
    total = sum(weights)
    return [w / total for w in weights]
