"""Round 8 (issue 5): general causes behind the blind8/9 misses.

Negation scope (无人受伤), flooding is not drowning, a window sill alone is no jumper,
present tense alone is no danger, lost persons, not breathing leads to 120, nuisance
words (扰民, 聚集), animals. Every sentence here was written for this test; none is
copied from a labelled set or a catalogue example.
"""

from __future__ import annotations

import functools

import pytest

from routing.catalogue import EMERGENCY_PLATFORMS, load_catalogue
from routing.classifier import Classifier
from routing.ngram_model import NgramModel
from routing.signals import Tense, animal_only, clause_tense, is_negated


@functools.cache
def rules() -> Classifier:
    return Classifier(load_catalogue(), learned=False)


@functools.cache
def full() -> Classifier:
    return Classifier(load_catalogue())


@pytest.mark.parametrize(
    ("tokens", "at"),
    [(["无人", "受伤"], 1), (["暂无", "人员", "受伤"], 2), (["没人", "受伤"], 1),
     (["未造成", "人员伤亡"], 1), (["尚未", "发现", "伤者"], 2)],
)
def test_written_register_negators_negate(tokens: list[str], at: int) -> None:
    assert is_negated(tokens, at)


@pytest.mark.parametrize(
    "text",
    ["顾客在店里跟老板吵了几句，已经走了，无人受伤，想投诉服务态度",
     "来电人称快递车倒车时碰倒了路边的花坛，暂无人员受伤，诉求物业修复",
     "楼下停的车被树枝刮了，没人受伤，想问物业管不管"],
)
def test_a_negated_injury_is_no_medical_emergency(text: str) -> None:
    for clf in (rules(), full()):
        d = clf.classify(text)
        assert not d.emergency and d.primary != "120", d


@pytest.mark.parametrize(
    "text",
    ["我们单元门口的下水道返上来的水漫到停车场了",
     "楼上卫生间水管裂了，我家厨房都淹了",
     "小区里的消防水管爆了，水淹了半个花园"],
)
def test_flooding_is_not_drowning(text: str) -> None:
    d = rules().classify(text)
    assert not d.emergency and d.primary not in {"110", "120"}, d


def test_a_burst_pipe_flooding_a_home_goes_to_the_water_utility_with_119() -> None:
    d = rules().classify("家里热水管子爆了，水一直往外喷，客厅淹了")
    assert d.primary == "water" and "119" in d.also, d


@pytest.mark.parametrize(
    ("text", "desk"),
    [("水库边上有个老人脸朝下漂着", "110"), ("池塘里有个小孩在扑腾", "110")],
)
def test_a_person_in_water_is_still_drowning(text: str, desk: str) -> None:
    d = rules().classify(text)
    assert d.emergency and d.primary == desk, d


def test_a_window_sill_alone_is_no_jumper() -> None:
    d = rules().classify("晾衣杆掉在我家窗台上了，想让物业帮忙拿一下")
    assert not d.emergency and d.primary != "110", d


def test_a_person_sitting_outside_a_window_is_still_a_jumper() -> None:
    d = rules().classify("对面有个姑娘坐在窗台外面哭，腿悬在外头")
    assert d.emergency and d.primary == "110", d


@pytest.mark.parametrize(
    "text",
    ["小区门口的快递柜到现在还在占着消防通道口", "隔壁正在装修，灰尘特别大",
     "那条河的水又黄又浑，一股怪味"],
)
def test_present_tense_alone_does_not_make_110_lead(text: str) -> None:
    d = rules().classify(text)
    assert d.primary == "12345" and not d.emergency, d


def test_a_cry_for_help_with_no_rule_still_makes_110_lead() -> None:
    d = rules().classify("快来人啊，这边出大事了")
    assert d.primary == "110" and d.three_party, d


@pytest.mark.parametrize(
    ("tokens", "tense"),
    [(["水", "又", "黄", "又", "浑"], Tense.UNSPECIFIED),
     (["到", "现在", "还没", "修"], Tense.UNSPECIFIED),
     (["他", "又", "来", "了"], Tense.PRESENT)],
)
def test_descriptive_again_and_waiting_until_now_are_not_present(
        tokens: list[str], tense: Tense) -> None:
    assert clause_tense(tokens, Tense.UNSPECIFIED) is tense


@pytest.mark.parametrize(
    "text",
    ["公交站有个老奶奶一直在转悠，问她住哪她说不上来",
     "超市里有个四五岁的孩子在哭，说找不着家了",
     "我外婆下午出门遛弯，出去了到天黑还没回来"],
)
def test_lost_persons_go_to_110(text: str) -> None:
    d = rules().classify(text)
    assert d.emergency and d.primary == "110" and d.category == "200500", d


def test_not_breathing_puts_the_ambulance_first_even_with_110_involved() -> None:
    d = rules().classify("湖里捞上来一个落水的男孩，现在没有呼吸，有人在做心肺复苏")
    assert d.emergency and d.primary == "120", d
    assert "110" in d.also and d.category == "490900"


def test_a_fall_that_has_happened_needs_the_ambulance_first() -> None:
    d = rules().classify("我舅舅从二楼平台摔下来了，躺着起不来")
    assert d.emergency and d.primary == "120" and "110" in d.also, d


@pytest.mark.parametrize(
    "text",
    ["来电人反映附近商场外墙施工夜里还在切割钢材，噪声扰民",
     "小区里一群流浪猫聚集在地下室门口，晚上叫得人睡不着"],
)
def test_nuisances_stay_with_12345(text: str) -> None:
    d = rules().classify(text)
    assert d.primary == "12345" and not d.emergency, d


def test_people_gathering_is_still_a_mass_incident() -> None:
    d = rules().classify("上百名业主聚集在售楼处门口")
    assert d.primary == "110" and d.category == "700100", d


@pytest.mark.parametrize(
    ("text", "animal"),
    [("小区里有只流浪猫腿上有伤，一瘸一拐的", True),
     ("我家狗被别的狗咬了一口", True),
     ("我被邻居家的狗咬了，腿上在流血", False),
     ("被狗咬了，血止不住", False),
     ("狗在叫，我爸倒在院子里", False)],
)
def test_animal_only_texts_name_no_person(text: str, animal: bool) -> None:
    assert animal_only(text) is animal


def test_a_hurt_animal_is_no_medical_emergency_but_a_hurt_person_is() -> None:
    pet = full().classify("楼下有只流浪狗受伤了，一直在流血")
    assert not pet.emergency and pet.primary not in EMERGENCY_PLATFORMS, pet
    person = full().classify("我被楼下的流浪狗咬了，一直在流血")
    assert person.emergency and person.primary == "120", person


def test_the_model_reads_the_clauses_left_when_a_danger_cue_is_set_aside() -> None:
    data = load_catalogue()
    model = NgramModel.train([("公园门口有个老太太说不出自己家在哪", "110"),
                              ("有个老人站在路口说不出自己家在哪", "110"),
                              ("小区门口的路灯坏了", "12345"), ("想问一下社保怎么交", "12345")])
    d = Classifier(data, model).classify("路口有个老大爷坐了好久，说不出自己家在哪里，倒是没受伤")
    assert d.primary == "110", d
    # The negated clause alone is set aside: nothing is left to escalate on.
    alone = Classifier(data, model).classify("没人受伤")
    assert alone.primary == "12345" and not alone.emergency, alone
