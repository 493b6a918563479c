"""The n-gram second opinion: features, training, and how it combines with the rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.catalogue import load_catalogue, parse_catalogue
from routing.classifier import Classifier
from routing.evaluation import evaluate, parse_labelled
from routing.ngram_model import LABELS, NgramModel, features
from routing.training import (
    DATA_DIR,
    catalogue_pairs,
    default_model,
    label_of,
    labelled_pairs,
    training_files,
)

TINY = parse_catalogue(
    'entries:\n- {code: "600001", name: 物业, platform: "12345", keywords: [物业]}\n'
    '- {code: "400100", name: 火灾, platform: "119", emergency: true, keywords: [着火]}\n')

PAIRS = [
    ("爷爷嘴唇发紫喘不上气", "120"), ("奶奶嘴唇发紫说不出话", "120"), ("孩子喘不上气了", "120"),
    ("物业费太贵了", "12345"), ("物业不修路灯", "12345"), ("楼上装修太吵了", "12345"),
    ("有人拿刀追人", "110"), ("楼道里全是烟", "119"), ("两辆车撞了", "122"),
]


def test_features_stay_inside_a_clause_and_drop_fillers() -> None:
    grams = features("嘴唇发紫，喘不上")
    assert "嘴唇" in grams and "喘不上" in grams and "紫" in grams
    assert "紫，" not in grams and "紫喘" not in grams  # no n-gram across the comma
    assert "了" not in features("着火了")  # a filler alone carries no desk


def test_model_learns_desks_and_names_its_evidence() -> None:
    model = NgramModel.train(PAIRS)
    opinion = model.predict("我妈嘴唇发紫")
    assert opinion.top == "120" and opinion.p_emergency > 0.5
    assert any("紫" in g for g in opinion.evidence)
    assert abs(sum(opinion.probs.values()) - 1.0) < 1e-9
    assert model.predict("物业又不修").top == "12345"


def test_emergency_odds_pool_the_desks() -> None:
    # Gas smell points at 119, nausea at 120: split five ways, each desk is weak, but
    # P(emergency) comes from the pooled table, where both clauses count for danger.
    pairs = [("屋里有股气味", "119"), ("厨房有气味", "119"), ("他有点犯恶心", "120"),
             ("老公犯恶心想吐", "120"), ("屋里装修太吵", "12345"), ("厨房漏水", "12345"),
             ("老公单位欠工资", "12345"), ("屋里暖气不热", "12345")]
    opinion = NgramModel.train(pairs).predict("屋里有气味，老公犯恶心")
    split = sum(p for label, p in opinion.probs.items() if label != "12345")
    assert opinion.danger is not None and opinion.p_emergency == opinion.danger
    assert opinion.p_emergency > split and opinion.p_emergency > 0.5


def test_unknown_text_gets_even_odds_not_a_12345_prior() -> None:
    # Six of nine lines are not 12345, but priors are uniform: nothing known, no lean.
    opinion = NgramModel.train(PAIRS).predict("ＸＹＺ")
    assert set(opinion.probs) == set(LABELS)
    assert max(opinion.probs.values()) == min(opinion.probs.values())


def test_model_escalates_what_no_rule_reads() -> None:
    text = "外公说不出话，嘴唇也不对劲"  # no rule and no harm word reads this
    assert Classifier(TINY, learned=False).classify(text).primary == "12345"
    d = Classifier(TINY, NgramModel.train(PAIRS)).classify(text)
    assert d.primary == "120" and d.three_party and d.caution and not d.emergency
    assert "12345" in d.also
    assert "model" in d.reason and "120 leads" in d.reason


def test_model_picks_the_desk_for_a_wording_only_110_lead() -> None:
    text = "我爸嘴唇发紫，喘不上气"  # harm words only: the rules let 110 lead
    rules_only = Classifier(TINY, learned=False).classify(text)
    assert rules_only.primary == "110" and "harm wording" in rules_only.reason
    d = Classifier(TINY, NgramModel.train(PAIRS)).classify(text)
    assert d.primary == "120" and "110" in d.also and "12345" in d.also


def test_model_does_not_override_a_danger_the_rules_set_aside() -> None:
    # 着火 is negated: the rules have positive evidence, so the model may not escalate.
    model = NgramModel.train([*PAIRS, ("着火了", "119"), ("着火了快来", "119")])
    d = Classifier(TINY, model).classify("没有着火")
    assert d.primary == "12345", d


def test_rule_emergencies_are_untouched_by_the_model() -> None:
    model = NgramModel.train([("着火", "12345")] * 5)  # a deliberately wrong model
    d = Classifier(TINY, model).classify("着火了")
    assert d.emergency and d.primary == "119"


def test_training_data_labels_and_files() -> None:
    assert label_of(("gas", "12345")) == "12345"
    assert label_of(("120", "110")) == "120"
    names = {p.name for p in training_files()}
    assert {"devset.tsv", "heldout.tsv", "train.tsv", "train2.tsv"} <= names
    pairs = catalogue_pairs(load_catalogue())
    assert pairs and all(label in LABELS for _, label in pairs)
    assert default_model(load_catalogue()).size > 1000


def test_train_set_is_big_varied_and_not_copied() -> None:
    with (DATA_DIR / "train.tsv").open(encoding="utf-8") as fh:
        items = parse_labelled(fh, source="train.tsv")
    assert len(items) >= 400
    assert {label for _, label in labelled_pairs(items)} == set(LABELS)
    others: set[str] = set()
    for path in training_files():
        if path.name != "train.tsv":
            with path.open(encoding="utf-8") as fh:
                others |= {i.text for i in parse_labelled(fh)}
    examples = {ex for e in load_catalogue().entries for ex in e.examples}
    assert not {i.text for i in items} & (others | examples)


@pytest.mark.parametrize("held_out", ["train2.tsv", "train3.tsv", "train4.tsv"])
def test_model_generalises_to_a_set_it_did_not_see(held_out: str) -> None:
    # Each of these was written as a check set; train on everything else and score it.
    data = load_catalogue()
    pairs = list(catalogue_pairs(data))
    for path in training_files():
        if path.name != held_out:
            with path.open(encoding="utf-8") as fh:
                pairs += labelled_pairs(parse_labelled(fh))
    with (DATA_DIR / held_out).open(encoding="utf-8") as fh:
        items = parse_labelled(fh)
    report = evaluate(Classifier(data, NgramModel.train(pairs)).classify, items)
    assert report.accuracy >= 0.9
    assert report.emergencies_to_12345 == [], [o.item.text for o in report.emergencies_to_12345]


def test_default_model_reads_only_the_shipped_data_dir() -> None:
    assert DATA_DIR == Path(__file__).resolve().parents[2] / "routing" / "data"
