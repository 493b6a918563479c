"""Softphone keys: the DTMF UserEvent path runs the same operations as HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telephony.control import keys
from telephony.control.authz import Principal
from telephony.control.controller import Controller
from telephony.control.errors import Forbidden, NotFound, Unprocessable, WrongState
from telephony.control.protocols import InMemoryOpStore
from telephony.control.targets import TargetPolicy
from telephony.control.testing import (
    AGENT,
    AGENT_ID,
    AGENT_UID,
    CALLER,
    CALLER_UID,
    FakeDirectory,
    FakeSender,
    two_party_call,
)


def key_event(key: str, channel: str = AGENT, uid: str = AGENT_UID) -> dict[str, str]:
    """As Asterisk emits it from features.conf applicationmap."""
    return {"Event": "UserEvent", "Privilege": "user,all", "Channel": channel,
            "Uniqueid": uid, "Linkedid": CALLER_UID, "UserEvent": "HotlineKey",
            "Key": key, "ChanVariable(TICKET_ID)": "T-0001", "Timestamp": "1764380001.5"}


@pytest.fixture
def ctl() -> Controller:
    directory = FakeDirectory()
    directory.put(two_party_call())
    return Controller(platform="12345", directory=directory, sender=FakeSender(),
                      store=InMemoryOpStore(), targets=TargetPolicy("12345"))


def test_key_table_codes_unique_and_documented() -> None:
    codes = [k.dtmf for k in keys.KEYS.values()]
    assert len(codes) == len(set(codes)) == len(keys.KEYS)
    lines = keys.applicationmap_lines()
    assert "xfer110 => *1,self,UserEvent(HotlineKey,Key: xfer110)" in lines
    # Asterisk's own attended-transfer keys are not ours to map.
    assert not any(line.startswith(("xfercomplete", "xfercancel")) for line in lines)
    text = (Path(__file__).resolve().parents[2] / "docs" / "control.md").read_text("utf-8")
    for spec in keys.KEYS.values():
        assert f"`{spec.dtmf}`" in text and f"`{spec.name}`" in text


async def test_dtmf_xfer110_runs_blind_transfer(ctl: Controller) -> None:
    op = await keys.on_user_event(ctl, key_event("xfer110"))
    assert op is not None and op.kind == "blind_transfer" and op.initiator == AGENT_ID
    sender: FakeSender = ctl.sender  # type: ignore[assignment]
    assert sender.sent[-1] == {"Action": "BlindTransfer", "Channel": AGENT,
                               "Context": "hotline-xfer", "Exten": "110"}
    # A second press is the same operation.
    assert await keys.on_user_event(ctl, key_event("xfer110")) is op
    assert sender.names() == ["BlindTransfer"]


async def test_dtmf_and_http_paths_share_operations(ctl: Controller) -> None:
    who = Principal("agent", AGENT_ID, "12345")
    via_http = await keys.press(ctl, who, "threeway", CALLER_UID)
    via_dtmf = await keys.on_user_event(ctl, key_event("threeway"))
    assert via_dtmf is via_http and via_http.kind == "conference" and via_http.target == "110"


async def test_warm_keys(ctl: Controller) -> None:
    op = await keys.on_user_event(ctl, key_event("warm"))
    assert op is not None and op.kind == "warm_transfer"
    with pytest.raises(WrongState):  # consult not ringing yet
        await keys.on_user_event(ctl, key_event("xfercancel"))


async def test_key_errors(ctl: Controller) -> None:
    with pytest.raises(Unprocessable) as err:
        await keys.on_user_event(ctl, key_event("xfer12345"))  # own platform
    assert err.value.code == "target_is_self"
    with pytest.raises(NotFound):
        await keys.on_user_event(ctl, key_event("rm -rf"))
    with pytest.raises(Unprocessable):
        await keys.on_user_event(ctl, key_event("xfer110", CALLER, CALLER_UID))
    with pytest.raises(NotFound):
        await keys.on_user_event(ctl, key_event("xfer110", "PJSIP/ghost-1", "1.1"))
    with pytest.raises(WrongState) as err2:
        await keys.on_user_event(ctl, key_event("leave3way"))
    assert err2.value.code == "no_operation"


async def test_other_events_are_not_keys(ctl: Controller) -> None:
    other: dict[str, Any] = {**key_event("xfer110"), "UserEvent": "Something"}
    assert await keys.on_user_event(ctl, other) is None
    assert keys.from_user_event({"Event": "Hangup"}) is None


async def test_pull_in_pressed_twice_is_one_participant(ctl: Controller) -> None:
    first = await keys.on_user_event(ctl, key_event("pull120"))
    second = await keys.on_user_event(ctl, key_event("pull120"))
    assert first is second and first is not None
    assert [p["target"] for p in first.to_dict()["participants"]] == ["120"]
    # Another agent pressing on this call is refused even though a conference is live.
    other_agent = Principal("agent", "agent12345-2", "12345")
    with pytest.raises(Forbidden):
        await keys.press(ctl, other_agent, "pull119", CALLER_UID)
