"""Negation, tense and hypothetical cues over token lists."""

from __future__ import annotations

from routing.signals import (
    Tense,
    after_prevention,
    clause_is_worry,
    clause_tense,
    harm_cue,
    has_danger_root,
    is_hypothetical,
    is_negated,
    split_clauses,
    text_frame,
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


def test_habit_reads_as_past_for_its_clause_only() -> None:
    assert clause_tense(["天天", "冒烟"], Tense.UNSPECIFIED) is Tense.PAST
    now = ["天天", "打", "我", "现在", "又", "打"]
    assert clause_tense(now, Tense.UNSPECIFIED) is Tense.PRESENT


def test_worry_clause_unless_it_is_happening_now() -> None:
    assert clause_is_worry(["怕", "有", "小孩", "掉下去"])
    assert not clause_is_worry(["怕", "他", "现在", "就", "跳"])
    assert not clause_is_worry(["他", "在", "跳"])


def test_text_frames() -> None:
    assert text_frame("我们单位搞消防演练", ["我们", "单位", "搞", "消防演练"]) == "story"
    assert text_frame("想问问液化气罐怎么换", ["想", "问问"]) == "consultation"
    # A consultation word with present-tense wording is a report, not a question.
    assert text_frame("请问现在他倒地了怎么办", ["请问", "现在", "他"]) is None
    assert text_frame("楼下着火了", ["楼下", "着火"]) is None


def test_prevention_prefix() -> None:
    assert after_prevention("防溺水教育", 1)
    assert after_prevention("预防火灾", 2)
    assert not after_prevention("有人溺水", 2)


def test_harm_words_and_exempt_everyday_words() -> None:
    assert harm_cue("嘴唇都发紫了") == "发紫"
    assert harm_cue("老人上下楼很困难") is None  # 困难 is not 困
    assert harm_cue("燃气灶打火打不着") is None
    # A root inside an already-read word can be excluded; a harm word still counts.
    assert harm_cue("烧烤店冒黑烟", roots_in="") == "黑烟"
    assert harm_cue("烧烤店", roots_in="") is None
