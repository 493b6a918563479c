"""Classifier behaviour: safety overrides, negation/time, three-party, reloads."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from routing.catalogue import EMERGENCY_PLATFORMS, Catalogue, load_catalogue, parse_catalogue
from routing.classifier import Classifier, LiveClassifier, keyword_weight


@functools.cache
def clf() -> Classifier:
    return Classifier(load_catalogue())


@pytest.mark.parametrize(
    ("text", "primary"),
    [
        ("楼道里电动车着火了，到处是烟", "119"),
        ("家里一股很浓的煤气味", "119"),
        ("我爸突然倒在地上，叫不醒了", "120"),
        ("他没有呼吸了，快来", "120"),
        ("有人拿着刀在街上追人", "110"),
        ("我老公正在打我", "110"),
        ("有个人坐在楼顶边上说要跳下去", "110"),
        ("小孩掉河里了", "110"),
        ("孩子被锁在车里，太阳底下暴晒", "110"),
        ("救命啊", "110"),
        ("电梯困人了，里面有老人", "119"),
    ],
)
def test_danger_forces_emergency(text: str, primary: str) -> None:
    d = clf().classify(text)
    assert d.emergency is True
    assert d.three_party is False  # never delay an emergency with a negotiation
    assert d.primary == primary
    assert "emergency" in d.reason and d.category is not None


def test_mixed_danger_goes_police_first_with_other_desks_also() -> None:
    d = clf().classify("他们打起来了，有人流了好多血，还把店点着了")
    assert d.emergency and d.primary == "110"
    assert {"119", "120"} <= set(d.also)


def test_injury_accident_pulls_in_traffic_desk() -> None:
    d = clf().classify("被车撞了，腿上一直流血")
    assert d.emergency and d.primary in {"120", "122"}
    assert {"120", "122"} <= {d.primary, *d.also}


def test_fire_only_is_119_with_police_notified() -> None:
    d = clf().classify("仓库起火了")
    assert (d.primary, d.emergency) == ("119", True)
    assert "110" in d.also


def test_hazard_now_plus_repair_is_police_first_with_work_order() -> None:
    d = clf().classify("电线杆被大风刮倒了，电线掉在路上")
    assert d.emergency and d.primary == "110"
    assert "12345" in d.also and "power" in d.also
    assert d.linkage == "police_first_then_12345"


@pytest.mark.parametrize(
    ("text", "not_emergency_primary"),
    [
        ("上个月我在小区门口被人打了，想问问验伤的事", "110"),  # past violence: a report
        ("去年家里着过火，保险一直不赔", "12345"),  # past fire: follow-up
        ("上个礼拜出警的民警态度很差，我要投诉", "12345"),  # past misconduct -> 12345
    ],
)
def test_past_danger_is_not_an_emergency(text: str, not_emergency_primary: str) -> None:
    d = clf().classify(text)
    assert d.emergency is False
    assert d.primary == not_emergency_primary
    assert "past" in d.reason


def test_past_then_present_violence_is_emergency() -> None:
    d = clf().classify("昨天他打了我，刚才又拿着刀来了")
    assert d.emergency and d.primary == "110"


@pytest.mark.parametrize(
    "text",
    ["没有着火，就是楼下烧烤店油烟太大", "没人受伤，车子被刮了一下", "他并没有拿刀，就是在骂人"],
)
def test_negated_danger_is_ignored(text: str) -> None:
    d = clf().classify(text)
    assert d.emergency is False
    assert "negated" in d.reason


def test_negation_scope_ends_at_contrast_word() -> None:
    d = clf().classify("不是吵架，而是有人在打人")
    assert d.emergency and d.primary == "110"


def test_hypothetical_question_is_not_an_emergency() -> None:
    d = clf().classify("想问一下如果家里着火了应该先做什么")
    assert d.emergency is False and d.primary == "12345"
    assert "hypothetical" in d.reason


def test_unknown_text_goes_three_party_not_a_guess() -> None:
    d = clf().classify("今天天气怎么样")
    assert d.three_party is True and d.category is None and d.confidence == 0.0
    assert d.primary == "12345" and d.also == ("110",)


def test_unknown_but_urgent_text_lets_110_lead_the_three_party_call() -> None:
    d = clf().classify("你们快来，刚才那边出大事了")
    assert d.three_party is True and d.primary == "110"


def test_unknown_text_with_a_harm_character_lets_110_lead() -> None:
    d = clf().classify("那块板子砸下来")
    assert d.three_party is True and d.primary == "110" and d.category is None
    assert "harm" in d.reason


def test_negated_harm_word_does_not_count_as_harm() -> None:
    d = clf().classify("我家里没有着火，想问问电闸")
    assert d.primary == "12345" and d.three_party is True


def test_catalogue_three_party_linkage_marks_three_party() -> None:
    d = clf().classify("楼上那家每天半夜喝酒划拳大喊大叫")
    assert d.three_party is True and d.emergency is False
    assert {d.primary, *d.also} >= {"110", "12345"}
    assert "three-party" in d.reason


def test_conflicting_platforms_go_three_party() -> None:
    data = parse_catalogue(
        """entries:
- {code: "600001", name: A, platform: "12345", keywords: [甲乙]}
- {code: "200001", name: B, platform: "110", keywords: [丙丁]}
""",
        "t.yaml",
    )
    d = Classifier(data).classify("甲乙丙丁")
    assert d.three_party is True
    assert "conflict" in d.reason
    assert {d.primary, *d.also} == {"12345", "110"}


@pytest.mark.parametrize(
    ("text", "primary", "also"),
    [
        ("我家停水两天了", "12345", "water"),
        ("暖气一点都不热", "12345", "heating"),
        ("有辆车把我车挡住了，打电话也不接", "12345", None),
        ("包工头拖欠工资三个月了", "12345", None),
        ("有人在棋牌室聚众赌博", "110", None),
        ("网上刷单被骗了两万", "110", None),
        ("等红灯被追尾了，人没事", "122", None),
    ],
)
def test_ordinary_matters(text: str, primary: str, also: str | None) -> None:
    d = clf().classify(text)
    assert d.emergency is False and d.three_party is False
    assert d.primary == primary
    assert 0.0 < d.confidence <= 1.0
    if also:
        assert also in d.also


def test_reason_names_rule_and_keyword() -> None:
    d = clf().classify("我们小区停电了")
    assert "600201" in d.reason and "停电" in d.reason


def test_keyword_inside_longer_jieba_word_is_found() -> None:
    # jieba keeps 聚众赌博 whole; the substring scan still finds 赌博.
    d = clf().classify("聚众赌博")
    assert d.primary == "110" and "赌博" in d.reason


def test_hint_alone_never_decides() -> None:
    d = clf().classify("楼上")
    assert d.category is None and d.three_party is True


def test_keyword_weights_favour_longer_phrases() -> None:
    assert keyword_weight("火") < keyword_weight("着火") < keyword_weight("没有呼吸")


def test_decision_to_dict_is_json_ready() -> None:
    out = clf().classify("着火了").to_dict()
    assert set(out) >= {"primary", "also", "three_party", "emergency", "confidence", "reason",
                        "category"}
    assert isinstance(out["also"], list)


def test_live_classifier_follows_reload(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('entries:\n- {code: "600001", name: A, platform: "12345", keywords: [甲乙]}\n',
                    encoding="utf-8")
    live = LiveClassifier(Catalogue(path))
    assert live.classify("甲乙").category == "600001"
    path.write_text('entries:\n- {code: "200001", name: B, platform: "110", keywords: [甲乙]}\n',
                    encoding="utf-8")
    live.catalogue.reload()
    d = live.classify("甲乙")
    assert (d.category, d.primary) == ("200001", "110")


def test_emergency_primary_is_always_an_emergency_desk() -> None:
    for entry in load_catalogue().entries:
        if entry.emergency:
            for example in entry.examples:
                d = clf().classify(example)
                assert d.primary in EMERGENCY_PLATFORMS, (entry.code, example, d)
