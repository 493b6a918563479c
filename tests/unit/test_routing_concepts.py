"""Danger said without catalogue words (concept entries 49xxxx), frames that set danger
aside (drill, story, worry, prevention, consultation), and the cautious defaults."""

from __future__ import annotations

import functools

import pytest

from routing.catalogue import EMERGENCY_PLATFORMS, load_catalogue
from routing.classifier import Classifier


@functools.cache
def clf() -> Classifier:
    return Classifier(load_catalogue())


# Written for this test, not copied from any labelled set or catalogue example.
@pytest.mark.parametrize(
    ("text", "concept", "primary"),
    [
        ("我外公靠在墙上喊他也不应", "490100", "120"),  # body state
        ("邻居大叔倒在楼梯口，嘴边都是白沫", "490100", "120"),
        ("阳台上晾的被子烧着了，烟往屋里窜", "490200", "119"),  # fire / smoke
        ("我女儿在游泳池里扑腾，快沉下去了", "490300", "110"),  # water
        ("有个男的翻过栏杆坐在楼顶边上", "490400", "110"),  # height
        ("一个人举着砖头在菜市场里追着一个女的打", "490500", "110"),  # weapon + violence
        ("矿上塌方了，下面还有三个工人", "490600", "110"),  # trapped (with collapse: 110 first)
        ("一辆面包车把一个骑车的小孩带倒了", "490700", "122"),  # vehicle + injury
        ("有个人趴在路口一直没动", "490800", "110"),  # person down on the road
    ],
)
def test_concept_danger_forces_emergency(text: str, concept: str, primary: str) -> None:
    d = clf().classify(text)
    assert d.emergency and d.primary == primary, d
    assert concept in d.reason and "(now)" in d.reason  # explainable: names the concept cue


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ("新闻里说有人拿刀砍人，我们这边安全吗", "story"),
        ("电视剧里有人被困在火场，孩子吓哭了", "story"),
        ("我们小区今天下午消防演习，会有人喊着火了", "story"),
        ("想问问液化气罐放在阳台上安不安全", "consultation"),
        ("小区的河边没有栏杆，怕有人掉下去", "worry"),
        ("请问防溺水宣传的展板在哪里领", "prevention"),
    ],
)
def test_framed_danger_is_not_an_emergency(text: str, frame: str) -> None:
    d = clf().classify(text)
    assert not d.emergency and d.primary == "12345", d
    assert f"({frame})" in d.reason


def test_framed_danger_keeps_110_in_a_three_party_call() -> None:
    d = clf().classify("新闻里说有人拿刀砍人，我们这边安全吗")
    assert d.caution and d.three_party and "110" in d.also
    assert "caution, danger cue: 拿刀(story)" in d.reason


def test_habit_is_a_nuisance_not_a_fire_now() -> None:
    d = clf().classify("隔壁饭店天天往外冒烟，熏得没法开窗")
    assert not d.emergency and d.primary == "12345", d
    assert "(past)" in d.reason


@pytest.mark.parametrize(
    "text",
    [
        "去年冬天我妈在家摔了，现在想申请居家养老补贴",  # past
        "没有人受伤，也没着火，就是电瓶车的电池鼓包了",  # negated
        "电梯坏了好几天了，老人上下楼很困难",  # 困 inside 困难 is no harm
    ],
)
def test_past_negated_and_everyday_words_do_not_raise_danger(text: str) -> None:
    d = clf().classify(text)
    assert not d.emergency and d.primary == "12345", d


def test_live_harm_cue_with_an_ordinary_match_lets_110_lead() -> None:
    # Only ordinary 12345 words matched (物业, 保安), but a harm word is live now.
    d = clf().classify("物业的保安把我拦住，手上有口子")
    assert not d.emergency and d.primary == "110" and d.three_party and d.caution
    assert "12345" in d.also
    assert "harm cue 口子(now): 110 leads" in d.reason


def test_being_pinned_down_now_is_an_emergency() -> None:
    # Round 7 widened the violence concept: "把我按在地上" is an assault in progress.
    d = clf().classify("物业的人把我按在地上")
    assert d.emergency and d.primary == "110", d
    assert "490500" in d.reason


def test_past_harm_cue_does_not_let_110_lead() -> None:
    d = clf().classify("上个月物业的人把我按在地上，想投诉物业公司")
    assert d.primary != "110" or "harm cue" not in d.reason, d


def test_every_concept_entry_is_an_emergency_with_an_emergency_desk() -> None:
    concepts = [e for e in load_catalogue().entries if e.code.startswith("49")]
    assert len(concepts) == 9  # 490900 (not breathing) added in round 8
    for entry in concepts:
        assert entry.emergency and entry.platform in EMERGENCY_PLATFORMS
        assert entry.patterns or entry.keywords


@pytest.mark.parametrize(
    ("text", "desk"),
    [("请问我爸突然晕倒了怎么办", "120"), ("请问一下家里煤气味很重应该怎么处理", "119")],
)
def test_a_sudden_danger_asked_as_a_question_is_a_report(text: str, desk: str) -> None:
    d = clf().classify(text)
    assert d.emergency and d.primary == desk, d


def test_a_past_sudden_event_in_a_consultation_stays_with_12345() -> None:
    d = clf().classify("上周我爸突然晕倒，想问医保报销怎么弄")
    assert not d.emergency and d.primary == "12345", d


def test_the_model_may_weigh_a_consultation_that_describes_a_person_now() -> None:
    # No acute cue, so the consultation frame holds for the rules; the model still reads
    # 见红 + 疼得厉害 as a medical emergency and lets 120 lead a three-party call.
    d = clf().classify("想问一下我老婆肚子疼得厉害还见红了该怎么办")
    assert d.primary == "120" and d.three_party and "12345" in d.also, d
