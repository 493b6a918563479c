"""Supervisor primitives: ChanSpy listen/whisper/barge and force-hangup."""

from __future__ import annotations

import pytest

from telephony.control.supervisor import ForceHangup, Spy
from telephony.control.testing import AGENT, AGENT_UID, CALLER_UID, chan, ev

SPYER = "PJSIP/sup12345-1-0000000a"


def make(mode: str = "listen") -> Spy:
    op = Spy(mode=mode, supervisor_endpoint="sup12345-1", spied_channel=AGENT,
             spied_uid=AGENT_UID, op_id="s1", call_id=CALLER_UID, platform="12345",
             initiator="sup", now=1.0)
    [action] = op.start(1.0)
    assert action["Channel"] == "PJSIP/sup12345-1"
    assert action["Data"].startswith(AGENT + ",")
    return op


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
def test_spy_lifecycle(mode: str) -> None:
    op = make(mode)
    op.feed(ev("ChanSpyStart", SpyerChannel=SPYER, SpyeeChannel=AGENT, SpyeeUniqueid=AGENT_UID),
            0.0)
    assert op.state == "spying"
    op.feed(ev("ChanSpyStop", SpyerChannel=SPYER, SpyeeChannel=AGENT, SpyeeUniqueid=AGENT_UID),
            0.0)
    assert (op.state, op.outcome) == ("ended", "ended")
    assert op.to_dict()["mode"] == mode


def test_spy_supervisor_does_not_answer() -> None:
    op = make()
    op.reply_events([{"Event": "OriginateResponse", "Response": "Failure", "Reason": "3"}], 2.0)
    assert (op.state, op.outcome) == ("failed", "supervisor_no_answer")


def test_spy_ends_when_spied_leg_hangs_up() -> None:
    op = make()
    op.feed(ev("ChanSpyStart", SpyerChannel=SPYER, SpyeeChannel=AGENT, SpyeeUniqueid=AGENT_UID),
            0.0)
    op.feed(ev("Hangup", **chan(AGENT, AGENT_UID)), 0.0)
    assert op.state == "ended"


def test_spy_ignores_other_spies() -> None:
    op = make()
    op.feed(ev("ChanSpyStart", SpyerChannel="PJSIP/sup12345-2-0000000b", SpyeeChannel=AGENT,
               SpyeeUniqueid=AGENT_UID), 0.0)
    assert op.state == "originating"


def test_force_hangup_confirmed_by_event() -> None:
    op = ForceHangup(channel=AGENT, uniqueid=AGENT_UID, op_id="h1", call_id=CALLER_UID,
                     platform="12345", initiator="sup", now=1.0)
    assert op.start(1.0) == [{"Action": "Hangup", "Channel": AGENT, "Cause": "16"}]
    assert op.state == "requested"
    op.feed(ev("Hangup", Cause="16", **chan(AGENT, AGENT_UID)), 0.0)
    assert (op.state, op.outcome) == ("hung_up", "hung_up")
    assert op.steps[-1].detail["cause"] == "16"
