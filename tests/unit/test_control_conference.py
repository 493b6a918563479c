"""Three-party / pull-in conference state machine."""

from __future__ import annotations

import pytest

from telephony.control.conference import Conference
from telephony.control.errors import BadInput, NotFound, WrongState
from telephony.control.targets import TargetPolicy
from telephony.control.testing import AGENT, AGENT_UID, CALLER, CALLER_UID, chan, ev, ticket

POLICY = TargetPolicy("12345")
P110 = "Local/110@hotline-out-00000006;1"
P110_UID = "1764380000.6"
P120 = "Local/120@hotline-out-00000008;1"
P120_UID = "1764380000.8"


def make(target: str = "110", first_receiver: str = "12345") -> Conference:
    op = Conference(agent_channel=AGENT, agent_uid=AGENT_UID, caller_channel=CALLER,
                    caller_uid=CALLER_UID, first_receiver=first_receiver, ticket=ticket(),
                    op_id="c0ffee", call_id=CALLER_UID, platform="12345",
                    initiator="agent12345-1", target=target, now=50.0)
    assert op.add(POLICY.resolve(target), 50.0) == []  # queued until the room exists
    caller_role, agent_role, redirect = op.start(50.0)
    # Roles first: hotline-conf picks the ConfBridge profile from HOTLINE_CONF_ROLE.
    assert caller_role == {"Action": "Setvar", "Channel": CALLER,
                           "Variable": "HOTLINE_CONF_ROLE", "Value": "caller"}
    assert (agent_role["Channel"], agent_role["Value"]) == (AGENT, "agent")
    assert redirect["Action"] == "Redirect" and redirect["ExtraChannel"] == AGENT
    assert redirect["Exten"] == op.name == "hlc0ffee"
    return op


def join(op: Conference, channel: str, uid: str) -> list[dict]:
    return op.feed(ev("ConfbridgeJoin", Conference=op.name, **chan(channel, uid)), 0.0)


def leave(op: Conference, channel: str, uid: str) -> list[dict]:
    return op.feed(ev("ConfbridgeLeave", Conference=op.name, **chan(channel, uid)), 0.0)


def active(op: Conference) -> None:
    assert join(op, CALLER, CALLER_UID) == []
    [originate] = join(op, AGENT, AGENT_UID)
    assert op.state == "active"
    assert originate["Action"] == "Originate"
    assert originate["Channel"] == "Local/110@hotline-out/n"
    assert originate["Exten"] == op.name
    assert "__TICKET_ID=T-0001" in originate["Variable"]
    assert op.participants["p1"].state == "dialing"
    assert join(op, P110, P110_UID) == []
    assert op.participants["p1"].state == "joined"


def test_three_party_agent_leaves_and_call_goes_on() -> None:
    op = make()
    active(op)
    assert op.request("leave", 1.0) == [{"Action": "Hangup", "Channel": AGENT, "Cause": "16"}]
    assert leave(op, AGENT, AGENT_UID) == []
    assert op.agent_left and op.state == "active"
    # The 110 agent leaves: only the citizen remains -> back to the owning queue.
    [back] = leave(op, P110, P110_UID)
    assert back == {"Action": "Redirect", "Channel": CALLER, "Context": "hotline-route",
                    "Exten": "queue-front", "Priority": "1"}
    assert op.state == "returning"
    leave(op, CALLER, CALLER_UID)
    assert (op.state, op.outcome) == ("ended", "returned_to_queue")
    [sample] = op.setup_samples()
    assert (sample["to"], sample["mode"], sample["outcome"]) == ("110", "conference", "answered")


@pytest.mark.parametrize(("outcome", "context", "exten", "result"), [
    ("agreed_110", "hotline-xfer", "110", "transferred_to_110"),
    ("agreed_12345", "hotline-route", "queue-front", "returned_to_queue"),
    ("no_agreement_first_receiver_keeps", "hotline-route", "queue-front", "returned_to_queue"),
])
def test_negotiation_decides_where_the_caller_goes(outcome: str, context: str, exten: str,
                                                    result: str) -> None:
    op = make()
    active(op)
    op.request("negotiate", 2.0, outcome=outcome, police_dispatch_first=True)
    assert op.to_dict()["negotiation"] == outcome and op.police_dispatch_first
    leave(op, AGENT, AGENT_UID)
    [back] = leave(op, P110, P110_UID)
    assert (back["Context"], back["Exten"]) == (context, exten)
    leave(op, CALLER, CALLER_UID)
    assert op.outcome == result


def test_first_receiver_keeps_when_110_received_first() -> None:
    op = make(first_receiver="110")
    active(op)
    leave(op, AGENT, AGENT_UID)
    [back] = leave(op, P110, P110_UID)
    assert (back["Context"], back["Exten"]) == ("hotline-xfer", "110")


def test_caller_hangs_up_everyone_else_is_released() -> None:
    op = make()
    active(op)
    out = op.feed(ev("Hangup", Cause="16", **chan(CALLER, CALLER_UID)), 0.0)
    assert {a["Channel"] for a in out} == {AGENT, P110}
    assert all(a["Action"] == "Hangup" for a in out)
    assert op.outcome == "caller_hung_up"


def test_pull_in_desk_fails_conference_continues() -> None:
    op = make()
    active(op)
    [originate] = op.add(POLICY.resolve("120"), 3.0)
    assert originate["Channel"] == "Local/120@hotline-out/n"
    out = op.reply_events([{"Event": "OriginateResponse", "Response": "Failure",
                            "Channel": "Local/120@hotline-out/n", "Reason": "5"}], 4.0)
    assert out == []
    assert op.participants["p2"].state == "failed" and op.state == "active"
    samples = {s["to"]: s["outcome"] for s in op.setup_samples()}
    assert samples == {"110": "answered", "120": "failed"}


def test_pull_in_joins_and_can_be_dropped() -> None:
    op = make()
    active(op)
    op.add(POLICY.resolve("120"), 3.0)
    with pytest.raises(WrongState):
        op.request("drop", 3.5, participant_id="p2")  # still dialing
    join(op, P120, P120_UID)
    assert op.request("drop", 4.0, participant_id="p2") == [
        {"Action": "Hangup", "Channel": P120, "Cause": "16"}]
    leave(op, P120, P120_UID)
    assert op.participants["p2"].state == "left"
    with pytest.raises(NotFound):
        op.request("drop", 5.0, participant_id="p9")


def test_same_desk_twice_refused() -> None:
    op = make()
    active(op)
    with pytest.raises(WrongState) as err:
        op.add(POLICY.resolve("110"), 1.0)
    assert err.value.code == "already_participant"


def test_last_party_failing_after_agent_left_returns_caller() -> None:
    op = make()
    join(op, CALLER, CALLER_UID)
    join(op, AGENT, AGENT_UID)
    leave(op, AGENT, AGENT_UID)
    assert op.state == "active"  # p1 still dialing: wait for it
    [back] = op.feed({"Event": "OriginateResponse", "Response": "Failure",
                      "Channel": "Local/110@hotline-out/n"}, 0.0)
    assert back["Exten"] == "queue-front"


def test_redirect_refused() -> None:
    op = make()
    op.action_failed({"Response": "Error", "Message": "Channel not found"}, 1.0)
    assert op.state == "rejected"


def test_leave_and_negotiate_validation() -> None:
    op = make()
    with pytest.raises(WrongState):
        op.request("leave", 1.0)  # not active yet
    with pytest.raises(BadInput):
        op.request("negotiate", 1.0, outcome="agreed_999")
    with pytest.raises(BadInput):
        op.request("negotiate", 1.0, police_dispatch_first="yes")


def test_events_of_other_conferences_ignored_and_end() -> None:
    op = make()
    active(op)
    op.feed(ev("ConfbridgeLeave", Conference="hlother", **chan(CALLER, CALLER_UID)), 0.0)
    assert op.state == "active"
    op.feed(ev("ConfbridgeEnd", Conference=op.name), 0.0)
    assert (op.state, op.outcome) == ("ended", "ended")
    with pytest.raises(WrongState):
        op.request("leave", 1.0)


def test_reconcile_redirect_never_ran() -> None:
    from telephony.control.testing import two_party_call

    op = make()
    op.reconcile(two_party_call(), 1.0)
    assert op.outcome == "not_executed"
