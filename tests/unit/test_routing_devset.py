"""Accuracy bars on the shipped labelled sets (see docs/routing.md for the honest history)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from routing.catalogue import load_catalogue
from routing.classifier import Classifier
from routing.evaluation import evaluate, parse_labelled

DATA = Path(__file__).resolve().parents[2] / "routing" / "data"


@functools.cache
def report(name: str):
    with (DATA / name).open(encoding="utf-8") as fh:
        items = parse_labelled(fh, source=name)
    return evaluate(Classifier(load_catalogue()).classify, items)


def test_devset_is_big_and_varied() -> None:
    r = report("devset.tsv")
    assert r.total >= 160
    assert len({o.item.text for o in r.outcomes}) == r.total  # no duplicates
    assert sum(o.item.is_emergency for o in r.outcomes) >= 40
    examples = {ex for e in load_catalogue().entries for ex in e.examples}
    assert not examples & {o.item.text for o in r.outcomes}  # not copied from the catalogue


@pytest.mark.parametrize(
    ("name", "floor"),
    [("devset.tsv", 0.95), ("heldout.tsv", 0.90), ("heldout3.tsv", 0.90), ("heldout4.tsv", 0.90),
     ("heldout5.tsv", 0.90), ("heldout6.tsv", 0.90), ("heldout2.tsv", 0.90),
     ("train.tsv", 0.90), ("train2.tsv", 0.90), ("train3.tsv", 0.90), ("train4.tsv", 0.90),
     # Round 8: blind8/9 and train5 are training data now, so these are regression floors.
     ("blind8.tsv", 0.90), ("blind9.tsv", 0.90), ("train5.tsv", 0.90)],
)
def test_accuracy_and_no_emergency_in_12345(name: str, floor: float) -> None:
    r = report(name)
    assert r.accuracy >= floor, name
    assert r.emergencies_to_12345 == [], [o.item.text for o in r.emergencies_to_12345]


def test_heldout7_floor() -> None:
    # Written to measure the round-6 rules blind (68.8 %, 10 emergencies to 12345). The
    # round-7 model trains on it, so this is a regression floor, not a blind score.
    r = report("heldout7.tsv")
    assert r.total >= 45
    assert r.accuracy >= 0.85
    assert r.emergencies_to_12345 == []


@pytest.mark.parametrize("name", ["final/blind10.tsv", "final/blind11.tsv"])
def test_final_blind_sets_stay_out_of_training_and_meet_the_bar(name: str) -> None:
    # Scored once, blind, by this very classifier (92.7 % and 93.9 %, no emergency to
    # 12345), and kept out of the model's training files so the score stays honest.
    from routing.training import training_files

    assert (DATA / name).resolve() not in {p.resolve() for p in training_files(DATA)}
    r = report(name)
    assert r.total >= 80
    assert r.accuracy >= 0.90, name
    assert r.emergencies_to_12345 == [], [o.item.text for o in r.emergencies_to_12345]
