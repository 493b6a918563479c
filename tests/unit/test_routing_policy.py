"""The directive as actions: keep, transfer, three-party, 首接, emergency with work order."""

from __future__ import annotations

import pytest

from routing.decision import Decision
from routing.policy import (
    EMERGENCY,
    KEEP,
    THREE_PARTY,
    TRANSFER,
    UNRESOLVED,
    decide_action,
    other_platform,
)


def decision(primary: str, *, also: tuple[str, ...] = (), three_party: bool = False,
             emergency: bool = False, linkage: str = "single") -> Decision:
    return Decision(primary=primary, also=also, three_party=three_party, emergency=emergency,
                    confidence=0.8, reason="test rule", category="600000", linkage=linkage)


@pytest.mark.parametrize("receiving", ["12345", "110"])
def test_own_scope_is_kept(receiving: str) -> None:
    a = decide_action(decision(receiving), receiving)
    assert (a.action, a.targets, a.work_order_to) == (KEEP, (receiving,), None)


@pytest.mark.parametrize(("primary", "receiving"), [("110", "12345"), ("12345", "110"),
                                                     ("122", "12345")])
def test_other_platforms_scope_is_one_key_transfer(primary: str, receiving: str) -> None:
    a = decide_action(decision(primary), receiving)
    assert (a.action, a.targets) == (TRANSFER, (primary,))
    assert "one-key transfer" in a.reason


@pytest.mark.parametrize("receiving", ["12345", "110"])
def test_emergency_goes_to_desk_first_whoever_received(receiving: str) -> None:
    d = decision("119", also=("110", "120", "gas"), emergency=True)
    a = decide_action(d, receiving)
    assert a.action == EMERGENCY
    assert a.targets == ("119", "110", "120")  # utilities are not dispatch desks
    assert a.work_order_to is None


def test_danger_with_repair_sends_work_order_to_12345() -> None:
    d = decision("110", also=("12345", "power"), emergency=True,
                 linkage="police_first_then_12345")
    a = decide_action(d, "12345")
    assert (a.action, a.targets, a.work_order_to) == (EMERGENCY, ("110",), "12345")


def test_emergency_ignores_three_party_flag() -> None:
    a = decide_action(decision("110", emergency=True, three_party=True), "12345")
    assert a.action == EMERGENCY


@pytest.mark.parametrize(("receiving", "pulled"), [("12345", ("110",)), ("110", ("12345",))])
def test_unclear_holds_three_party_with_the_other_platform(receiving: str, pulled: tuple) -> None:
    a = decide_action(decision(receiving, three_party=True), receiving)
    assert (a.action, a.targets) == (THREE_PARTY, pulled)


def test_three_party_also_pulls_in_a_third_desk_if_it_leads() -> None:
    a = decide_action(decision("122", three_party=True), "12345")
    assert a.action == THREE_PARTY and a.targets == ("110", "122")


@pytest.mark.parametrize("receiving", ["12345", "110"])
def test_unresolved_three_party_is_kept_by_first_receiver(receiving: str) -> None:
    d = decision(other_platform(receiving), three_party=True)
    a = decide_action(d, receiving, three_party_outcome=UNRESOLVED)
    assert (a.action, a.targets) == (KEEP, (receiving,))
    assert "首接" in a.reason


def test_agreed_three_party_transfers_or_keeps() -> None:
    d = decision("12345", three_party=True)
    moved = decide_action(d, "12345", three_party_outcome="110")
    assert (moved.action, moved.targets) == (TRANSFER, ("110",))
    kept = decide_action(d, "12345", three_party_outcome="12345")
    assert kept.action == KEEP


@pytest.mark.parametrize(("receiving", "action"), [("12345", TRANSFER), ("110", KEEP)])
def test_police_first_linkage_without_danger(receiving: str, action: str) -> None:
    d = decision("110", also=("12345",), linkage="police_first_then_12345")
    a = decide_action(d, receiving)
    assert (a.action, a.targets, a.work_order_to) == (action, ("110",), "12345")


def test_utility_matter_at_12345_is_kept_with_work_order() -> None:
    a = decide_action(decision("water"), "12345")
    assert (a.action, a.targets, a.work_order_to) == (KEEP, ("12345",), "water")


def test_utility_matter_at_110_is_diverted_to_12345() -> None:
    a = decide_action(decision("power"), "110")
    assert (a.action, a.targets, a.work_order_to) == (TRANSFER, ("12345",), "power")


def test_action_to_dict() -> None:
    out = decide_action(decision("110"), "12345").to_dict()
    assert out == {"action": "transfer", "targets": ["110"], "work_order_to": None,
                   "reason": out["reason"]}
    assert isinstance(out["reason"], str) and out["reason"]


def cautious(primary: str = "12345") -> Decision:
    return Decision(primary=primary, also=("110",), three_party=False, emergency=False,
                    confidence=0.8, reason="test rule; caution, danger cue: 刀(story)",
                    category="600000", caution=True)


@pytest.mark.parametrize(("receiving", "pulled"), [("12345", ("110",)), ("110", ("12345",))])
def test_caution_never_leaves_12345_alone_with_the_call(receiving: str, pulled: tuple) -> None:
    # Not a silent keep at 12345, not a one-key transfer to 12345 from 110.
    action = decide_action(cautious(), receiving)
    assert action.action == THREE_PARTY and action.targets == pulled


def test_caution_after_unresolved_three_party_is_kept_by_first_receiver() -> None:
    assert decide_action(cautious(), "110", UNRESOLVED).action == KEEP
    assert decide_action(cautious(), "110", UNRESOLVED).targets == ("110",)


def test_caution_does_not_change_a_desk_decision() -> None:
    assert decide_action(cautious("110"), "12345").action == TRANSFER
