"""Negation, tense and hypothetical cues over token lists."""

from __future__ import annotations

from routing.signals import (
    Tense,
    clause_tense,
    has_danger_root,
    is_hypothetical,
    is_negated,
    split_clauses,
)


def test_split_clauses_on_chinese_and_ascii_punctuation() -> None:
    clauses = split_clauses("没有着火，就是烟大。快来!好吗 谢谢")
    assert clauses == ["没有着火", "就是烟大", "快来", "好吗", "谢谢"]
    assert split_clauses("") == []


def test_negator_within_window() -> None:
    assert is_negated(["没有", "着火"], 1)
    assert is_negated(["并", "没有", "人", "受伤"], 3)  # 没有 two tokens back
    assert is_negated(["差点", "砸到", "人"], 1)  # a near miss did not happen
    assert is_negated(["不是", "打架"], 1)


def test_negator_outside_window_does_not_count() -> None:
    tokens = ["没有", "a", "b", "c", "着火"]
    assert not is_negated(tokens, 4)


def test_scope_breaker_stops_negation() -> None:
    assert not is_negated(["不是", "吵架", "而是", "打人"], 3)
    assert not is_negated(["没有", "但是", "流血"], 2)


def test_no_negation_at_clause_start() -> None:
    assert not is_negated(["着火"], 0)


def test_present_beats_past_in_one_clause() -> None:
    tokens = ["昨天", "那个", "人", "现在", "又", "来", "了"]
    assert clause_tense(tokens, Tense.UNSPECIFIED) is Tense.PRESENT


def test_past_marker_and_inheritance() -> None:
    past = clause_tense(["上个月", "被", "打"], Tense.UNSPECIFIED)
    assert past is Tense.PAST
    assert clause_tense(["他", "拿", "刀"], past) is Tense.PAST  # carries to the next clause
    assert clause_tense(["刚才", "又", "来"], past) is Tense.PRESENT
    assert clause_tense(["他", "拿", "刀"], Tense.UNSPECIFIED) is Tense.UNSPECIFIED


def test_hypothetical_needs_conditional_and_question() -> None:
    assert is_hypothetical("如果着火了应该怎么办", ["如果", "着火", "了", "应该", "怎么办"])
    # A conditional threat is not a question: it stays a report.
    threat = ["如果", "你们", "不", "来", "他", "就要", "跳"]
    assert not is_hypothetical("如果你们不来他就要跳了", threat)
    assert not is_hypothetical("怎么办着火了", ["怎么办", "着火", "了"])


def test_danger_roots() -> None:
    assert has_danger_root("那块板子砸下来")
    assert has_danger_root("手上全是血")
    assert not has_danger_root("请问办事大厅几点开门")
