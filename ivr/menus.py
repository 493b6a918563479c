"""Every IVR key in one place (the docs' key table is written from this).

GB/T 33358 cautions against long, deep IVR menus: no menu here has more than
five choices, and every menu has a default for callers who press nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr import contract


@dataclass(frozen=True)
class Choice:
    key: str
    value: str  # a category code or a destination
    label: str


# 12345 main menu: 0 is the emergency escape, 1-5 are ticket categories.
EMERGENCY_KEY = "0"
CATEGORIES = (
    Choice("1", "ivr.consult", "政策咨询"),
    Choice("2", "ivr.complaint", "投诉举报"),
    Choice("3", "ivr.utility", "水电气暖报修"),
    Choice("4", "ivr.public", "市政设施与公共服务"),
    Choice("5", "ivr.suggest", "意见建议"),
)
DEFAULT_CATEGORY = "ivr.other"  # no choice made: an agent classifies
EMERGENCY_CATEGORY = "ivr.emergency"

# After 0: which emergency desk. Nothing / anything else -> 110 at once.
EMERGENCY_DESKS = (
    Choice("1", contract.FIRE, "火警"),
    Choice("2", contract.MEDICAL, "医疗急救"),
)
EMERGENCY_DEFAULT = contract.POLICE

# Surge mode offer (12345, when the estimated wait passes the threshold).
SURGE_SELF_SERVICE = "1"
SURGE_CALLBACK = "2"
SURGE_KEEP_WAITING = "9"  # also the default

# After a self-service answer.
FAQ_RESOLVED = "1"  # -> done; anything else / nothing -> queue

# 110 main menu: emergency first; waiting or 1 goes to a police call-taker now.
POLICE_NOW = "1"
POLICE_TRAFFIC = "2"  # -> 122 (only where 122 is a separate desk)
POLICE_NON_EMERGENCY = "3"  # -> category menu -> diversion offer

# Diversion offer (110 -> 12345).
DIVERT_ACCEPT = "1"  # -> 12345 over the trunk; anything else / nothing -> 110 queue


def choice_for(choices: tuple[Choice, ...], key: str) -> Choice | None:
    return next((c for c in choices if c.key == key), None)


def keys_of(choices: tuple[Choice, ...]) -> str:
    return "".join(c.key for c in choices)
