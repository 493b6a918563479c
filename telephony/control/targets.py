"""Where a call may be sent: an allow-list, never a free dial string.

Numbers double as extensions in the `hotline-xfer` dialplan context, which
knows how to reach each one (trunk to the other platform, trunk to a desk).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from telephony.control import validation
from telephony.control.errors import Unprocessable

PLATFORM_NUMBERS = ("12345", "110")
EMERGENCY_DESKS = ("119", "120", "122")


@dataclass(frozen=True)
class Target:
    number: str  # the extension in hotline-xfer
    kind: str  # "platform" | "desk" | "utility"
    label: str

    @property
    def is_emergency_desk(self) -> bool:
        return self.number in EMERGENCY_DESKS


class TargetPolicy:
    """The allow-list for one platform: the other platform, the desks, utility desks."""

    def __init__(self, platform: str, utility_desks: Mapping[str, str] | None = None) -> None:
        if platform not in PLATFORM_NUMBERS:
            raise ValueError(f"unknown platform {platform!r}")
        self.platform = platform
        self._targets: dict[str, Target] = {
            n: Target(n, "platform", f"platform {n}") for n in PLATFORM_NUMBERS
        }
        self._targets.update({n: Target(n, "desk", f"desk {n}") for n in EMERGENCY_DESKS})
        for number, label in (utility_desks or {}).items():
            validation.token(number, "target")
            self._targets[number] = Target(number, "utility", label)

    @property
    def other_platform(self) -> str:
        return "110" if self.platform == "12345" else "12345"

    def numbers(self) -> list[str]:
        return sorted(self._targets)

    def resolve(self, number: object) -> Target:
        if not isinstance(number, str) or number not in self._targets:
            raise Unprocessable("target is not in the allow-list", code="invalid_target",
                                allowed=self.numbers())
        if number == self.platform:
            raise Unprocessable("cannot transfer a call to its own platform",
                                code="target_is_self")
        return self._targets[number]
