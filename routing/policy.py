"""The directive (国办发〔2022〕12号) applied to a Decision at the receiving platform.

- danger -> 110 (or 119/120/122) dispatches first; work order to 12345 for repair/follow-up;
- clearly the other platform's matter -> one-key transfer;
- unclear -> three-party call (citizen, 12345, 110);
- three-party without agreement -> 首接: the platform that took the call keeps it;
- a danger cue set aside by the classifier (`caution`) never leaves 12345 alone with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from routing.catalogue import EMERGENCY_PLATFORMS, UTILITY_PLATFORMS
from routing.decision import Decision

KEEP, TRANSFER, THREE_PARTY, EMERGENCY = "keep", "transfer", "three_party", "emergency"
UNRESOLVED = "unresolved"  # three-party outcome: the platforms did not agree


@dataclass(frozen=True)
class Action:
    action: str  # keep | transfer | three_party | emergency
    targets: tuple[str, ...]  # where the call goes / who is pulled in, in order
    work_order_to: str | None  # platform that gets a follow-up work order
    reason: str

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out


def other_platform(receiving: str) -> str:
    return "12345" if receiving == "110" else "110"


def decide_action(decision: Decision, receiving: str,
                  three_party_outcome: str | None = None) -> Action:
    """three_party_outcome: None (not held yet), UNRESOLVED, or the agreed platform."""
    follow_up = "12345" if ("12345" in decision.also
                            or decision.linkage == "police_first_then_12345") else None
    if decision.emergency:
        desks = [decision.primary, *(p for p in decision.also if p in EMERGENCY_PLATFORMS)]
        return Action(EMERGENCY, tuple(dict.fromkeys(desks)), follow_up,
                      f"danger: {decision.primary} dispatches first ({decision.reason})")

    primary = decision.primary
    # A danger cue was set aside (question, worry, story) but 12345 would hold the call
    # alone: check with 110 in a three-party call rather than keep it silently.
    cautious = decision.caution and primary == "12345"
    if decision.three_party or cautious:
        if three_party_outcome is None:
            pulled = [other_platform(receiving)]
            if primary != receiving and primary not in pulled:
                pulled.append(primary)
            return Action(THREE_PARTY, tuple(pulled), None,
                          f"unclear, three-party call ({decision.reason})")
        if three_party_outcome == UNRESOLVED:
            return Action(KEEP, (receiving,), None,
                          "三方通话未达成一致: 首接 (first receiver keeps the call)")
        primary = three_party_outcome

    if decision.linkage == "police_first_then_12345":
        if receiving == "110":
            return Action(KEEP, ("110",), "12345", "police first, then work order to 12345")
        return Action(TRANSFER, ("110",), "12345", "police first, then work order to 12345")

    if primary == receiving:
        return Action(KEEP, (receiving,), None, f"in {receiving}'s scope")
    if primary in UTILITY_PLATFORMS:
        if receiving == "12345":
            return Action(KEEP, ("12345",), primary, f"12345 keeps, work order to {primary}")
        return Action(TRANSFER, ("12345",), primary, f"双非: to 12345, work order to {primary}")
    return Action(TRANSFER, (primary,), None, f"one-key transfer: {primary}'s scope")
