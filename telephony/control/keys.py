"""Softphone keys: DTMF feature codes and desk-phone action URLs, one table.

features.conf [applicationmap] fires `UserEvent(HotlineKey,Key: <name>)` on the
agent's channel; the HTTP action URL /api/v1/keys/<name> names the same key.
Both end in `press()`, which runs the same controller operation as the REST API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telephony.control.authz import Principal
from telephony.control.controller import Controller
from telephony.control.errors import NotFound, Unprocessable, WrongState
from telephony.control.operation import Operation

OTHER = "other"  # the other platform, resolved per service instance


@dataclass(frozen=True)
class KeySpec:
    name: str
    dtmf: str
    action: str  # blind | warm | three_party | pull_in | complete | cancel | leave
    target: str | None
    label: str
    # True: the DTMF code is Asterisk's own (features.conf [general] atxfer*), handled by
    # Asterisk on the phone; the name still works as an HTTP action URL.
    builtin: bool = False


KEYS: dict[str, KeySpec] = {k.name: k for k in (
    KeySpec("xfer110", "*1", "blind", "110", "one-key transfer to 110"),
    KeySpec("xfer12345", "*2", "blind", "12345", "one-key transfer to 12345"),
    KeySpec("threeway", "*3", "three_party", OTHER, "three-party call with the other platform"),
    KeySpec("warm", "*4", "warm", OTHER, "warm transfer to the other platform"),
    KeySpec("pull119", "*5", "pull_in", "119", "pull 119 (fire) into the call"),
    KeySpec("pull120", "*6", "pull_in", "120", "pull 120 (ambulance) into the call"),
    KeySpec("pull122", "*7", "pull_in", "122", "pull 122 (traffic police) into the call"),
    KeySpec("xfercomplete", "#2", "complete", None, "complete the warm transfer", True),
    KeySpec("xfercancel", "#1", "cancel", None, "cancel the warm transfer", True),
    KeySpec("leave3way", "*0", "leave", None, "leave the three-party call (it goes on)"),
)}

USER_EVENT = "HotlineKey"


def applicationmap_lines() -> list[str]:
    """The features.conf [applicationmap] entries for every key."""
    return [f"{k.name} => {k.dtmf},self,UserEvent({USER_EVENT},Key: {k.name})"
            for k in KEYS.values() if not k.builtin]


def spec_for(name: object) -> KeySpec:
    if not isinstance(name, str) or name not in KEYS:
        raise NotFound("unknown key", code="unknown_key", known=sorted(KEYS))
    return KEYS[name]


async def press(controller: Controller, who: Principal, name: str, call_id: str) -> Operation:
    """Run the operation a key stands for on `call_id`, as `who`."""
    spec = spec_for(name)
    target = controller.targets.other_platform if spec.target == OTHER else spec.target
    if spec.action == "blind":
        return await controller.blind_transfer(who, call_id, str(target))
    if spec.action == "warm":
        return await controller.warm_transfer(who, call_id, str(target))
    if spec.action in ("three_party", "pull_in"):
        return await controller.conference(who, call_id, target, purpose=spec.action)
    kind = "warm_transfer" if spec.action in ("complete", "cancel") else "conference"
    op = controller.live_op(call_id, kind)
    if op is None:
        raise WrongState(f"no {kind.replace('_', ' ')} in progress on this call",
                         code="no_operation")
    return await controller.operation_verb(who, op.op_id, spec.action)


def from_user_event(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key name, agent channel) from a HotlineKey UserEvent; None for other events."""
    if event.get("Event") != "UserEvent" or event.get("UserEvent") != USER_EVENT:
        return None
    return str(event.get("Key", "")).strip(), str(event.get("Channel", ""))


async def on_user_event(controller: Controller, event: Mapping[str, Any]) -> Operation | None:
    """DTMF path: the pressing channel identifies the agent and the call."""
    parsed = from_user_event(event)
    if parsed is None:
        return None
    name, channel = parsed
    call_id = controller.directory.call_for_channel(channel)
    if call_id is None:
        raise NotFound("the key came from a channel on no known call", code="call_not_found")
    call = controller.directory.get_call(call_id)
    leg = call.leg_by_channel(channel) if call else None
    if leg is None or not leg.agent_id:
        raise Unprocessable("keys work on agent legs only", code="not_an_agent_leg")
    who = Principal("agent", leg.agent_id, controller.platform)
    return await press(controller, who, name, call_id)
