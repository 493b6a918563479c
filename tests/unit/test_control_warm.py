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
    TRUNK_UID,
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
    op.feed(ev("DialBegin", DestChannel=TRUNK, DestUniqueid=TRUNK_UID,
               **chan(CONSULT, CONSULT_UID)), 0.0)
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


def consult_hangup(later_s: float = 0.0) -> dict[str, str]:
    """The target leg's Hangup; `later_s` pushes its Asterisk Timestamp forward."""
    event = ev("Hangup", Cause="16", **chan(TRUNK, TRUNK_UID))
    event["Timestamp"] = f"{float(event['Timestamp']) + later_s:.6f}"
    return event


def test_swap_only_when_answered() -> None:
    op = make()
    ringing(op)
    with pytest.raises(WrongState):
        op.request("swap", 1.0)
    op.feed(ev("DialEnd", DialStatus="ANSWER", **chan(CONSULT, CONSULT_UID)), 0.0)
    # PlayDTMF plays only the first character of Digit: one action per digit.
    assert op.request("swap", 2.0) == [
        {"Action": "PlayDTMF", "Channel": AGENT, "Digit": "#", "Receive": "true"},
        {"Action": "PlayDTMF", "Channel": AGENT, "Digit": "4", "Receive": "true"}]
    # Requested, not yet seen: the state only moves on the agent's BridgeEnter.
    assert (op.swap_requests, op.swaps, op.state) == (1, 0, "consult_answered")
    assert op.steps[-1].detail == {"swap_requested": 1}


def test_swap_is_confirmed_by_bridge_events_and_swaps_back() -> None:
    op = make()
    answered(op)
    op.feed(agent_back(), 1.0)  # atxferswap: agent with the caller, 110 still up
    assert (op.state, op.swaps, op.done) == ("swapped", 1, False)
    assert op.steps[-1].detail == {"swap": 1}
    op.feed(ev("BridgeEnter", BridgeUniqueid="b-consult", **chan(AGENT, AGENT_UID)), 2.0)
    assert (op.state, op.swaps) == ("consult_answered", 2)
    op.feed(agent_back(), 3.0)
    assert op.request("complete", 4.0) == [{"Action": "Hangup", "Channel": AGENT,
                                            "Cause": "16"}]
    op.feed(ev("AttendedTransfer", Result="Success", OrigTransfererChannel=AGENT,
               OrigTransfererUniqueid=AGENT_UID, DestType="Link"), 5.0)
    assert (op.state, op.outcome, op.swaps) == ("completed", "completed", 3)


def test_target_hangs_up_while_held_after_a_swap() -> None:
    op = make()
    answered(op)
    op.feed(agent_back(), 1.0)
    op.feed(consult_hangup(later_s=5.0), 2.0)
    assert (op.state, op.outcome, op.swaps) == ("cancelled", "cancelled", 1)
    assert op.steps[-1].detail["by"] == "consult_hangup"


def test_swap_back_verb_allowed_while_swapped() -> None:
    op = make()
    answered(op)
    op.feed(agent_back(), 1.0)
    assert [a["Digit"] for a in op.request("swap", 2.0)] == ["#", "4"]
    assert op.state == "swapped" and op.swap_requests == 1


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
    """The agent pressed Asterisk's own atxferabort (#1): 110 hung up, agent back."""
    op = make()
    answered(op)
    op.feed(consult_hangup(), 0.0)
    op.feed(agent_back(), 0.0)
    assert (op.state, op.outcome) == ("cancelled", "cancelled")
    assert op.steps[-1].detail["by"] == "phone"


def digit(d: str, direction: str = "Received") -> dict[str, str]:
    return ev("DTMFEnd", Digit=d, Direction=direction, DurationMs="100", **chan(AGENT, AGENT_UID))


def test_phone_abort_key_cancels_when_the_agent_is_back_first() -> None:
    """Asterisk 22's order for #1: agent back in the caller's bridge, then 110 hangs up."""
    op = make()
    answered(op)
    op.feed(digit("#"), 0.0)
    op.feed(digit("1"), 0.0)
    op.feed(agent_back(), 0.0)
    assert (op.state, op.outcome, op.swaps) == ("cancelled", "cancelled", 0)
    assert "swapped" not in [s.state for s in op.steps]


def test_swap_key_digits_and_sent_digits_do_not_count_as_abort() -> None:
    op = make()
    answered(op)
    op.feed(digit("1", direction="Sent"), 0.0)  # played to the phone, not pressed
    op.feed(digit("#"), 0.0)
    op.feed(digit("4"), 0.0)
    op.feed(agent_back(), 0.0)
    assert (op.state, op.swaps) == ("swapped", 1)
    op.feed(consult_hangup(later_s=5.0), 1.0)  # the held target gave up
    assert (op.state, op.outcome) == ("cancelled", "cancelled")
    assert op.steps[-1].detail["by"] == "consult_hangup"


def test_hangup_right_after_a_swap_was_an_abort() -> None:
    """No DTMF events: #1 looks like a swap until the target hangs up milliseconds later."""
    op = make()
    answered(op)
    op.feed(agent_back(), 1.0)
    assert (op.state, op.swaps) == ("swapped", 1)
    op.feed(consult_hangup(), 1.004)
    assert (op.state, op.outcome, op.swaps) == ("cancelled", "cancelled", 0)
    assert op.steps[-1].detail["by"] == "phone" and op.steps[-1].detail["seen_as_swap"]


def test_phone_complete_key_while_ringing() -> None:
    """atxfercomplete (#2) while the target still rings: Asterisk completes it."""
    op = make()
    ringing(op)
    op.feed(ev("AttendedTransfer", Result="Success", OrigTransfererChannel=AGENT,
               OrigTransfererUniqueid=AGENT_UID, DestType="Link"), 0.0)
    assert op.outcome == "completed"


def test_completed_before_the_answer_is_a_blind_transfer_of_the_agent_leg() -> None:
    op = WarmTransfer(agent_channel=AGENT, agent_uid=AGENT_UID, caller_channel=CALLER,
                      caller_uid=CALLER_UID, target_spec=TargetPolicy("12345").resolve("110"),
                      home_bridge=BRIDGE, op_id="op3",
                      call_id=CALLER_UID, platform="12345", initiator="agent12345-1", now=1.0)
    op.start(1.0)
    ringing(op)
    op.request("complete", 2.0)
    # The agent leg transfers: if the target then fails, hotline-return rings that agent
    # (BLINDTRANSFER names it on the caller), as for a one-key press.
    assert op.feed(agent_back(), 0.0) == [{"Action": "BlindTransfer", "Channel": AGENT,
                                           "Context": "hotline-xfer", "Exten": "110"}]
