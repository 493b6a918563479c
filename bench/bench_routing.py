"""Decision latency on the dev set: routing.Classifier vs a naive baseline, same run.

Baseline ("naive-substring"): for every catalogue entry, test every keyword with
`keyword in text` and pick the entry with the most hits. No segmentation, no
negation, no tense. It is what a first attempt would do; the ratio shows what
jieba + the keyword index + cue handling cost or save per decision.

    .venv/bin/python bench/bench_routing.py [--rounds 20] [--file routing/data/devset.tsv]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from routing.catalogue import CatalogueData, load_catalogue
from routing.classifier import Classifier
from routing.evaluation import evaluate, parse_labelled

ROOT = Path(__file__).resolve().parents[1]


def naive_baseline(data: CatalogueData) -> Callable[[str], str]:
    entries = [(e.platform, e.keywords) for e in data.entries]

    def classify(text: str) -> str:
        best, best_hits = "12345", 0
        for platform, keywords in entries:
            hits = sum(1 for kw in keywords if kw in text)
            if hits > best_hits:
                best, best_hits = platform, hits
        return best

    return classify


def latencies_us(fn: Callable[[str], object], texts: list[str], rounds: int,
                 clock: Callable[[], int]) -> list[float]:
    for text in texts:  # warm caches
        fn(text)
    samples = []
    gc.disable()
    try:
        for _ in range(rounds):
            for text in texts:
                start = clock()
                fn(text)
                samples.append((clock() - start) / 1000)
    finally:
        gc.enable()
    return samples


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--file", type=Path, default=ROOT / "routing/data/devset.tsv")
    args = parser.parse_args()

    with args.file.open(encoding="utf-8") as fh:
        items = parse_labelled(fh, source=str(args.file))
    texts = [i.text for i in items]
    data = load_catalogue()
    classifier = Classifier(data)
    rules_only = Classifier(data, learned=False)  # shows what the n-gram model costs
    baseline = naive_baseline(data)

    ours_acc = evaluate(classifier.classify, items).accuracy
    rules_acc = evaluate(rules_only.classify, items).accuracy
    base_acc = sum(baseline(i.text) in i.allowed for i in items) / len(items)
    print(f"{len(texts)} utterances x {args.rounds} rounds = {len(texts) * args.rounds} "
          f"decisions each; catalogue: {len(data.entries)} entries, "
          f"{sum(len(e.keywords) for e in data.entries)} keywords")
    # Wall time includes preemption on a busy host; thread CPU time is the decision's own cost.
    for label, clock in (("wall", time.perf_counter_ns), ("thread-cpu", time.thread_time_ns)):
        ours = latencies_us(classifier.classify, texts, args.rounds, clock)
        rules = latencies_us(rules_only.classify, texts, args.rounds, clock)
        base = latencies_us(baseline, texts, args.rounds, clock)
        print(f"\n[{label}]{'':14}{'p50 us':>10}{'p99 us':>10}{'max us':>10}{'accuracy':>10}")
        for name, s, acc in (("routing.Classifier", ours, ours_acc),
                             ("  rules only", rules, rules_acc),
                             ("naive-substring", base, base_acc)):
            print(f"{name:22}{pct(s, 50):10.1f}{pct(s, 99):10.1f}{max(s):10.1f}{acc:10.1%}")
        print(f"ratio classifier/baseline: p50 {pct(ours, 50) / pct(base, 50):.2f}x, "
              f"p99 {pct(ours, 99) / pct(base, 99):.2f}x; "
              f"classifier p99 under 1 ms: {'yes' if pct(ours, 99) < 1000 else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
