"""WarmTransfer (Atxfer) state machine: complete, cancel, swap, early complete, failures."""

from __future__ import annotations

import pytest

from telephony.control.errors import WrongState
from telephony.control.targets import TargetPolicy
from telephony.control.testing import (
    AGENT,
    AGENT_UID,
    BRIDGE,
    CALLER,
    CALLER_UID,
    TRUNK,
    blind_success_events,
    chan,
    ev,
)
from telephony.control.warm import WarmTransfer

CONSULT = "Local/110@hotline-out-00000004;2"
CONSULT_UID = "1764380000.5"


def make() -> WarmTransfer:
    op = WarmTransfer(agent_channel=AGENT, agent_uid=AGENT_UID, caller_channel=CALLER,
                      caller_uid=CALLER_UID, target_spec=TargetPolicy("12345").resolve("110"),
                      home_bridge=BRIDGE, op_id="op2", call_id=CALLER_UID, platform="12345",
                      initiator="agent12345-1", now=10.0)
    assert op.start(10.0) == [{"Action": "Atxfer", "Channel": AGENT,
                               "Context": "hotline-out", "Exten": "110"}]
    return op


def ringing(op: WarmTransfer) -> None:
    op.feed(ev("MusicOnHoldStart", **chan(CALLER, CALLER_UID)), 0.0)
    op.feed(ev("DialBegin", DestChannel=TRUNK, **chan(CONSULT, CONSULT_UID)), 0.0)
    assert op.state == "consult_ringing"


def answered(op: WarmTransfer) -> None:
    ringing(op)
    op.feed(ev("DialEnd", DestChannel=TRUNK, DialStatus="ANSWER",
               **chan(CONSULT, CONSULT_UID)), 0.0)
    # The agent joins the consult bridge: not "back with the caller".
    op.feed(ev("BridgeEnter", BridgeUniqueid="b-consult", **chan(AGENT, AGENT_UID)), 0.0)
    assert op.state == "consult_answered"


def agent_back() -> dict[str, str]:
    return ev("BridgeEnter", BridgeUniqueid=BRIDGE, **chan(AGENT, AGENT_UID))


def test_complete_after_answer() -> None:
    op = make()
    answered(op)
    assert op.request("complete", 20.0) == [{"Action": "Hangup", "Channel": AGENT,
                                             "Cause": "16"}]
    assert op.state == "completing"
    op.feed(ev("AttendedTransfer", Result="Success", OrigTransfererChannel=AGENT,
               OrigTransfererUniqueid=AGENT_UID, TransfereeChannel=CALLER, DestType="Link"),
            0.0)
    assert (op.state, op.outcome) == ("completed", "completed")
    [sample] = op.setup_samples()
    assert (sample["mode"], sample["outcome"]) == ("attended", "completed")
    assert sample["seconds"] == pytest.approx(op.step_time("consult_answered") - 10.0)


def test_cancel_returns_agent_to_caller() -> None:
    op = make()
    answered(op)
    assert op.request("cancel", 20.0) == [{"Action": "CancelAtxfer", "Channel": AGENT}]
    op.feed(agent_back(), 0.0)
    assert (op.state, op.outcome) == ("cancelled", "cancelled")


def test_cancel_while_ringing() -> None:
    op = make()
    ringing(op)
    op.request("cancel", 20.0)
    op.feed(agent_back(), 0.0)
    assert op.outcome == "cancelled"


def test_complete_before_answer_behaves_like_blind() -> None:
    op = make()
    ringing(op)
    assert op.request("complete", 20.0) == [{"Action": "CancelAtxfer", "Channel": AGENT}]
    assert op.state == "converting"
    follow = op.feed(agent_back(), 0.0)
    assert follow == [{"Action": "BlindTransfer", "Channel": AGENT,
                       "Context": "hotline-xfer", "Exten": "110"}]
    assert op.state == "blind"
    for event in blind_success_events():
        op.feed(event, 0.0)
    assert (op.state, op.outcome) == ("completed", "completed")
    assert op.to_dict()["blind"]["state"] == "completed"
    assert op.setup_samples()[0]["mode"] == "attended_blind"


def test_consult_target_busy() -> None:
    op = make()
    ringing(op)
    op.feed(ev("DialEnd", DialStatus="BUSY", **chan(CONSULT, CONSULT_UID)), 0.0)
    assert op.state == "consult_failed"
    op.feed(agent_back(), 0.0)
    assert (op.state, op.outcome) == ("target_failed", "target_failed")


def test_swap_only_when_answered() -> None:
    op = make()
    ringing(op)
    with pytest.raises(WrongState):
        op.request("swap", 1.0)
    op.feed(ev("DialEnd", DialStatus="ANSWER", **chan(CONSULT, CONSULT_UID)), 0.0)
    assert op.request("swap", 2.0) == [{"Action": "PlayDTMF", "Channel": AGENT,
                                        "Digit": "#4", "Receive": "true"}]
    assert op.swaps == 1 and op.state == "consult_answered"
    assert op.steps[-1].detail == {"swap": 1}


def test_verbs_refused_before_consult() -> None:
    op = make()
    for verb in ("complete", "cancel", "swap"):
        with pytest.raises(WrongState) as err:
            op.request(verb, 1.0)
        assert err.value.status == 409


def test_caller_hangs_up_during_consult() -> None:
    op = make()
    answered(op)
    op.feed(ev("Hangup", Cause="16", **chan(CALLER, CALLER_UID)), 0.0)
    assert op.outcome == "caller_hung_up"


def test_failed_attended_transfer_event() -> None:
    op = make()
    answered(op)
    op.request("complete", 1.0)
    op.feed(ev("AttendedTransfer", Result="Fail", OrigTransfererChannel=AGENT,
               OrigTransfererUniqueid=AGENT_UID), 0.0)
    assert op.state == "consult_failed"
    op.feed(agent_back(), 0.0)
    assert op.outcome == "target_failed"


def test_atxfer_refused() -> None:
    op = make()
    op.action_failed({"Response": "Error", "Message": "No such channel"}, 1.0)
    assert op.state == "rejected"


@pytest.mark.parametrize(("setup", "verb", "back_to"), [
    ("answered", "cancel", "consult_answered"),
    ("ringing", "cancel", "consult_ringing"),
    ("answered", "complete", "consult_answered"),
    ("ringing", "complete", "consult_ringing"),
])
def test_refused_verb_returns_to_previous_state(setup: str, verb: str, back_to: str) -> None:
    op = make()
    (answered if setup == "answered" else ringing)(op)
    op.request(verb, 1.0)
    op.action_failed({"Response": "Error", "Message": "No active transfer"}, 2.0)
    assert op.state == back_to and not op.done
    assert op.steps[-1].detail == {"refused": "No active transfer"}


def test_phone_abort_key_cancels() -> None:
    """The agent pressed Asterisk's own atxferabort (#1): back in the caller's bridge."""
    op = make()
    answered(op)
    op.feed(agent_back(), 0.0)
    assert (op.state, op.outcome) == ("cancelled", "cancelled")
    assert op.steps[-1].detail["by"] == "phone"


def test_phone_complete_key_while_ringing() -> None:
    """atxfercomplete (#2) while the target still rings: Asterisk completes it."""
    op = make()
    ringing(op)
    op.feed(ev("AttendedTransfer", Result="Success", OrigTransfererChannel=AGENT,
               OrigTransfererUniqueid=AGENT_UID, DestType="Link"), 0.0)
    assert op.outcome == "completed"


def test_converted_blind_carries_return_agent() -> None:
    op = WarmTransfer(agent_channel=AGENT, agent_uid=AGENT_UID, caller_channel=CALLER,
                      caller_uid=CALLER_UID, target_spec=TargetPolicy("12345").resolve("110"),
                      home_bridge=BRIDGE, return_agent="agent12345-1", op_id="op3",
                      call_id=CALLER_UID, platform="12345", initiator="agent12345-1", now=1.0)
    op.start(1.0)
    ringing(op)
    op.request("complete", 2.0)
    setvar, blind = op.feed(agent_back(), 0.0)
    assert setvar == {"Action": "Setvar", "Channel": CALLER, "Variable": "HOTLINE_RETURN_AGENT",
                      "Value": "agent12345-1"}
    assert blind["Action"] == "BlindTransfer"
