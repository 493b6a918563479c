"""BlindTransfer state machine, fed with Asterisk 22's real event order."""

from __future__ import annotations

import pytest

from telephony.control.blind import BlindTransfer
from telephony.control.operation import IllegalTransition
from telephony.control.targets import TargetPolicy
from telephony.control.testing import (
    AGENT,
    AGENT_UID,
    CALLER,
    CALLER_UID,
    TRUNK,
    blind_failure_events,
    blind_success_events,
    chan,
    ev,
)

POLICY = TargetPolicy("12345")


def make(target: str = "110") -> BlindTransfer:
    op = BlindTransfer(agent_channel=AGENT, agent_uid=AGENT_UID, caller_channel=CALLER,
                       caller_uid=CALLER_UID, target_spec=POLICY.resolve(target),
                       op_id="op1", call_id=CALLER_UID, platform="12345",
                       initiator="agent12345-1", now=100.0)
    assert op.start(100.0) == [{"Action": "BlindTransfer", "Channel": AGENT,
                                "Context": "hotline-xfer", "Exten": target}]
    return op


def states(op: BlindTransfer) -> list[str]:
    return [s.state for s in op.steps]


def test_success_path() -> None:
    op = make()
    for event in blind_success_events():
        assert op.feed(event, 200.0) == []
    assert states(op) == ["created", "requested", "transferred", "ringing", "answered",
                          "completed"]
    assert (op.done, op.outcome, op.target_channel, op.dial_status) == (
        True, "completed", TRUNK, "ANSWER")
    # Steps carry the Asterisk Timestamp, not our clock.
    assert all(s.at != 200.0 for s in op.steps[2:])
    [sample] = op.setup_samples()
    assert sample["from"] == "12345" and sample["to"] == "110" and sample["mode"] == "blind"
    assert sample["outcome"] == "answered"
    assert sample["seconds"] == pytest.approx(op.step_time("answered") - 100.0)


@pytest.mark.parametrize("status", ["BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION"])
def test_target_fails_caller_returns_to_agent(status: str) -> None:
    op = make("119")
    for event in blind_failure_events(status):
        op.feed(event, 0.0)
    assert op.state == "target_failed"
    assert op.steps[-1].detail == {"dial_status": status}
    op.feed(ev("DialBegin", DestChannel="PJSIP/agent12345-1-00000009",
               **chan(CALLER, CALLER_UID)), 0.0)
    assert op.state == "returning"
    op.feed(ev("DialEnd", DestChannel="PJSIP/agent12345-1-00000009", DialStatus="ANSWER",
               **chan(CALLER, CALLER_UID)), 0.0)
    assert (op.state, op.outcome) == ("returned_to_agent", "returned_to_agent")
    assert op.setup_samples()[0]["outcome"] == "returned_to_agent"


def test_agent_gone_caller_goes_to_front_of_queue() -> None:
    op = make()
    for event in blind_failure_events("NOANSWER"):
        op.feed(event, 0.0)
    op.feed(ev("DialBegin", DestChannel="PJSIP/agent12345-1-00000009",
               **chan(CALLER, CALLER_UID)), 0.0)
    op.feed(ev("DialEnd", DestChannel="PJSIP/agent12345-1-00000009", DialStatus="NOANSWER",
               **chan(CALLER, CALLER_UID)), 0.0)
    assert op.state == "returning"
    op.feed(ev("QueueCallerJoin", Queue="q12345", Position="1", **chan(CALLER, CALLER_UID)), 0.0)
    assert (op.state, op.outcome) == ("returned_to_queue", "returned_to_queue")
    assert op.steps[-1].detail["queue"] == "q12345"


def test_direct_to_queue_when_dialplan_skips_the_agent() -> None:
    op = make()
    for event in blind_failure_events("CHANUNAVAIL"):
        op.feed(event, 0.0)
    op.feed(ev("QueueCallerJoin", Queue="q12345", **chan(CALLER, CALLER_UID)), 0.0)
    assert op.outcome == "returned_to_queue"


def test_caller_hangs_up_while_ringing() -> None:
    op = make()
    for event in blind_success_events()[:6]:
        op.feed(event, 0.0)
    assert op.state == "ringing"
    op.feed(ev("Hangup", Cause="16", **chan(CALLER, CALLER_UID)), 0.0)
    assert (op.state, op.outcome) == ("caller_hung_up", "caller_hung_up")
    # Terminal: later events change nothing.
    op.feed(blind_success_events()[6], 0.0)
    assert op.state == "caller_hung_up"


def test_failed_blind_transfer_event() -> None:
    op = make()
    op.feed(ev("BlindTransfer", Result="Fail", TransfererChannel=AGENT,
               TransfereeChannel=CALLER, TransfereeUniqueid=CALLER_UID), 0.0)
    assert (op.state, op.outcome) == ("rejected", "rejected")
    assert op.setup_samples() == []


def test_action_error_reply_rejects() -> None:
    op = make()
    op.action_failed({"Response": "Error", "Message": "No such channel"}, 5.0)
    assert op.state == "rejected"
    assert op.steps[-1].detail["reply"] == "No such channel"


def test_unrelated_events_ignored() -> None:
    op = make()
    other = {"Channel": "PJSIP/citizen-00000077", "Uniqueid": "9.9"}
    for name in ("Hangup", "DialBegin", "DialEnd", "BridgeEnter", "QueueCallerJoin"):
        op.feed(ev(name, DialStatus="ANSWER", **other), 0.0)
    op.feed(ev("BlindTransfer", Result="Success", TransfereeChannel="PJSIP/x-1",
               TransfereeUniqueid="9.9"), 0.0)
    assert states(op) == ["created", "requested"]


def test_missed_blindtransfer_event_dialbegin_still_proves_it() -> None:
    op = make()
    for event in blind_success_events()[5:]:  # from DialBegin on
        op.feed(event, 0.0)
    assert op.outcome == "completed"


def test_illegal_transition_is_a_bug() -> None:
    op = make()
    with pytest.raises(IllegalTransition):
        op._go("completed", 1.0)


def test_reconcile_after_reconnect() -> None:
    from telephony.control.testing import two_party_call

    not_run = make()
    not_run.reconcile(two_party_call(), 9.0)
    assert (not_run.state, not_run.outcome) == ("rejected", "not_executed")

    gone = make()
    gone.reconcile(None, 9.0)
    assert (gone.state, gone.outcome) == ("call_ended", "call_ended")

    in_flight = make()
    in_flight.feed(blind_success_events()[0], 0.0)
    in_flight.reconcile(two_party_call(bridged=False), 9.0)
    assert in_flight.state == "transferred"  # still waiting for events, nothing re-sent
