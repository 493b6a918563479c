"""Who may do what: agents on their own calls, supervisors on their platform, admin anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.control.errors import Forbidden
from telephony.control.protocols import CallView

ROLES = ("agent", "supervisor", "admin")


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str  # the agent id (its endpoint) or a user name
    platform: str
    endpoint: str | None = None  # a supervisor's phone, for spying

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")


def may_act_on_call(who: Principal, call: CallView, platform: str) -> bool:
    if who.role == "admin":
        return True
    if who.role == "supervisor":
        return who.platform == platform
    return who.subject in call.agents()


def require_call_access(who: Principal, call: CallView, platform: str) -> None:
    if not may_act_on_call(who, call, platform):
        raise Forbidden("not a party to this call", code="not_your_call")


def require_supervisor(who: Principal, platform: str) -> None:
    if who.role == "admin" or (who.role == "supervisor" and who.platform == platform):
        return
    raise Forbidden("supervisor role required", code="supervisor_only")
