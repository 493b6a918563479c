"""Scoring a classifier against a labelled TSV (text<TAB>allowed|platforms). Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from routing.catalogue import EMERGENCY_PLATFORMS, PLATFORMS
from routing.decision import Decision


class LabelError(ValueError):
    pass


@dataclass(frozen=True)
class Labelled:
    line: int
    text: str
    allowed: tuple[str, ...]

    @property
    def is_emergency(self) -> bool:
        """Only emergency desks are acceptable: sending it to 12345 would be a failure."""
        return set(self.allowed) <= EMERGENCY_PLATFORMS


@dataclass
class Outcome:
    item: Labelled
    decision: Decision

    @property
    def ok(self) -> bool:
        return self.decision.primary in self.item.allowed


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def confusion(self) -> Counter[tuple[str, str]]:
        """(expected, predicted) counts; expected is the first allowed platform."""
        return Counter((o.item.allowed[0], o.decision.primary) for o in self.outcomes)

    @property
    def emergencies_misrouted(self) -> list[Outcome]:
        return [o for o in self.outcomes
                if o.item.is_emergency and o.decision.primary not in EMERGENCY_PLATFORMS]

    @property
    def emergencies_to_12345(self) -> list[Outcome]:
        return [o for o in self.emergencies_misrouted if o.decision.primary == "12345"]


def parse_labelled(lines: Iterable[str], source: str = "<tsv>") -> list[Labelled]:
    items = []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise LabelError(
                f"{source}:{n}: expected text<TAB>platforms, got {len(parts)} field(s)")
        allowed = tuple(p.strip() for p in parts[1].split("|") if p.strip())
        unknown = [p for p in allowed if p not in PLATFORMS]
        if not allowed or unknown:
            raise LabelError(f"{source}:{n}: bad platform label(s) {parts[1]!r}")
        items.append(Labelled(n, parts[0].strip(), tuple(dict.fromkeys(allowed))))
    return items


def evaluate(classify: Callable[[str], Decision], items: Iterable[Labelled]) -> Report:
    return Report([Outcome(item, classify(item.text)) for item in items])


def format_report(report: Report) -> str:
    out = [f"accuracy: {report.correct}/{report.total} = {report.accuracy:.1%}"]
    labels = sorted({e for e, _ in report.confusion} | {p for _, p in report.confusion})
    width = max(7, *(len(x) for x in labels)) + 1
    out.append("confusion (rows expected = first allowed, columns predicted):")
    out.append("".ljust(width) + "".join(x.rjust(width) for x in labels))
    for exp in labels:
        row = [report.confusion.get((exp, pred), 0) for pred in labels]
        if any(row):
            out.append(exp.ljust(width) + "".join(str(v).rjust(width) for v in row))
    misses = [o for o in report.outcomes if not o.ok]
    out.append(f"misses: {len(misses)}")
    for o in misses:
        out.append(f"  line {o.item.line}: {o.item.text} | want {'|'.join(o.item.allowed)}"
                   f" got {o.decision.primary} ({o.decision.reason})")
    bad = report.emergencies_misrouted
    out.append(f"emergencies sent to a non-emergency platform: {len(bad)}")
    for o in bad:
        out.append(f"  line {o.item.line}: {o.item.text} -> {o.decision.primary}")
    return "\n".join(out)
