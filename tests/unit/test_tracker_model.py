"""Tracker behaviour on hand-built events: ticket variables, tolerance, invariants, memory."""

from __future__ import annotations

from telephony.model import parse_chan_variables, ticket_vars_by_prefix
from telephony.tracker import RECENTLY_GONE_MAX, Tracker


def chan(uid: str, linkedid: str | None = None, state: int = 6, prefix: str = "",
         chanvars: str | list[str] | None = None, name: str | None = None) -> dict:
    event = {
        f"{prefix}Channel": name or f"PJSIP/x-{uid}",
        f"{prefix}ChannelState": str(state),
        f"{prefix}Uniqueid": uid,
        f"{prefix}Linkedid": linkedid or uid,
    }
    if chanvars is not None:
        event[f"{prefix}ChanVariable"] = chanvars
    return event


def ev(name: str, ts: float, **headers) -> dict:
    return {"Event": name, "Timestamp": f"{ts:.6f}", **headers}


def test_chan_variable_as_str_or_list_and_inherited_names():
    assert parse_chan_variables("TICKET_ID=T-1") == {"TICKET_ID": "T-1"}
    assert parse_chan_variables(["TICKET_ID=T-1", "TICKET_URGENCY=urgent", "OTHER=x"]) == {
        "TICKET_ID": "T-1", "TICKET_URGENCY": "urgent"}
    assert parse_chan_variables(["__TICKET_ID=T-2", "TICKET_SUMMARY=", "broken"]) == {
        "TICKET_ID": "T-2"}
    assert parse_chan_variables(None) == {}


def test_prefixed_chan_variables_are_split_by_channel():
    event = {"TransfererChanVariable": "TICKET_ID=T-1",
             "TransfereeChanVariable": ["TICKET_ID=T-1", "TICKET_ORIGIN=12345"],
             "ChanVariable": "TICKET_ID="}
    assert ticket_vars_by_prefix(event) == {
        "Transferer": {"TICKET_ID": "T-1"},
        "Transferee": {"TICKET_ID": "T-1", "TICKET_ORIGIN": "12345"}}


def test_ticket_from_a_single_chanvariable_string():
    t = Tracker()
    out = t.feed(ev("Newchannel", 1.0, **chan("1.1", state=0, chanvars="TICKET_ID=T-9")))
    assert [e.ticket_id for e in out] == [None, "T-9"]  # call.started, then leg.created
    assert t.tickets["T-9"].call_ids == {"1.1"}


def test_ticket_learned_from_a_transfer_events_prefixed_variables():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1")))
    t.feed(ev("Newchannel", 1.1, **chan("1.2", "1.1")))
    t.feed(ev("BlindTransfer", 2.0, Result="Success", Extension="110", Context="x",
              **chan("1.2", "1.1", prefix="Transferer", chanvars="TICKET_ID=T-3"),
              **chan("1.1", prefix="Transferee", chanvars=["TICKET_ID=T-3"])))
    assert t.legs["1.1"].ticket_id == t.legs["1.2"].ticket_id == "T-3"
    assert t.calls["1.1"].ticket_id == "T-3"


def test_legs_with_one_ticket_are_one_call_even_with_different_linkedids():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1", chanvars="TICKET_ID=T-1")))
    t.feed(ev("Newchannel", 2.0, **chan("2.1")))  # e.g. an Originate: own linkedid
    assert len(t.calls) == 2
    out = t.feed(ev("VarSet", 2.5, Uniqueid="2.1", Variable="__TICKET_ID", Value="T-1"))
    # The Originate's leg joins the ticket after it was created: the fact names its channel.
    assert [e.kind for e in out] == ["call.merged", "ticket.context"]
    assert out[0].call_id == "1.1" and out[0].data == {"merged": "2.1"}
    assert out[1].leg == "2.1" and out[1].ticket_id == "T-1"
    assert out[1].data == {"channel": t.legs["2.1"].channel}
    assert set(t.calls) == {"1.1"} and t.calls["1.1"].legs == {"1.1", "2.1"}


def test_unknown_events_and_junk_never_raise():
    t = Tracker()
    assert t.feed({"Event": "PeerStatus", "Peer": "PJSIP/x"}) == []
    assert t.feed({"Response": "Success"}) == []
    assert t.feed(ev("BridgeEnter", 1.0, Uniqueid="9.9")) == []  # no BridgeUniqueid: malformed
    assert t.feed(ev("Newstate", 1.0, Uniqueid="9.8", ChannelState="up")) == []
    assert t.feed({"Event": "Hangup", "Timestamp": "soon", "Uniqueid": "7.7"}) == []
    assert t.events_ignored == 2
    assert t.anomalies["malformed:BridgeEnter"] == t.anomalies["malformed:Newstate"] == 1
    assert t.legs == {}
    assert t.anomalies["bad_timestamp"] == 1 and t.anomalies["unknown_leg"] == 1
    assert t.check_invariants() == []


def test_mid_call_bridge_enter_adopts_the_leg():
    t = Tracker()
    out = t.feed(ev("BridgeEnter", 5.0, BridgeUniqueid="b1", BridgeType="basic",
                    **chan("3.1", chanvars=["TICKET_ID=T-7"])))
    assert [e.kind for e in out] == ["call.started", "leg.created", "leg.answered", "leg.bridged"]
    assert t.anomalies["adopted_leg"] == 1
    assert t.bridges["b1"].members == {"3.1"} and t.legs["3.1"].ticket_id == "T-7"


def test_a_leg_is_never_in_two_bridges_even_when_a_leave_was_lost():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1")))
    t.feed(ev("BridgeEnter", 2.0, BridgeUniqueid="b1", **chan("1.1")))
    out = t.feed(ev("BridgeEnter", 3.0, BridgeUniqueid="b2", **chan("1.1")))
    assert [e.kind for e in out] == ["leg.unbridged", "leg.bridged"]
    assert "b1" not in t.bridges and t.bridges["b2"].members == {"1.1"}
    assert t.anomalies["enter_while_bridged"] == 1
    assert t.check_invariants() == []


def test_late_events_for_hung_up_legs_do_not_resurrect_them():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1")))
    t.feed(ev("Hangup", 2.0, Cause="16", **chan("1.1")))
    assert t.feed(ev("Newstate", 2.1, **chan("1.1", state=6))) == []
    assert t.feed(ev("BridgeEnter", 2.2, BridgeUniqueid="b", **chan("1.1"))) == []
    assert t.legs == {} and t.bridges == {} and t.anomalies["late_event"] == 2


def test_memory_stays_bounded_over_many_calls():
    t = Tracker()
    for i in range(3 * RECENTLY_GONE_MAX // 2):
        caller, agent = f"{i}.1", f"{i}.2"
        ts = float(i)
        t.feed(ev("Newchannel", ts, **chan(caller, chanvars=f"TICKET_ID=T-{i}")))
        t.feed(ev("Newchannel", ts, **chan(agent, caller, chanvars=f"TICKET_ID=T-{i}")))
        t.feed(ev("BridgeEnter", ts, BridgeUniqueid=f"b{i}", **chan(caller)))
        t.feed(ev("BridgeEnter", ts, BridgeUniqueid=f"b{i}", **chan(agent, caller)))
        t.feed(ev("Hangup", ts + 1, **chan(caller)))
        t.feed(ev("Hangup", ts + 1, **chan(agent, caller)))
    assert (t.calls, t.legs, t.bridges, t.tickets) == ({}, {}, {}, {})
    assert t._call_by_linkedid == {}
    assert len(t._gone) == RECENTLY_GONE_MAX
    assert t.totals["calls"] == 3 * RECENTLY_GONE_MAX // 2


def test_recently_gone_window_forgets_the_oldest_first():
    t = Tracker()
    for i in range(RECENTLY_GONE_MAX + 1):
        t.feed(ev("Newchannel", float(i), **chan(f"{i}.1")))
        t.feed(ev("Hangup", float(i), Cause="16", **chan(f"{i}.1")))
    # A uniqueid that comes back and ends again keeps its place in the window.
    last = f"{RECENTLY_GONE_MAX}.1"
    t.feed(ev("Newchannel", 1e5, **chan(last)))
    t.feed(ev("Hangup", 1e5, Cause="16", **chan(last)))
    assert len(t._gone) == len(t._gone_order) == RECENTLY_GONE_MAX
    t.feed(ev("Hold", 1e5, **chan("0.1")))  # evicted: now simply unknown
    t.feed(ev("Hold", 1e5, **chan("1.1")))  # oldest still remembered: late
    t.feed(ev("Hold", 1e5, **chan(last)))
    assert t.anomalies["unknown_leg"] == 1 and t.anomalies["late_event"] == 2


def test_handlers_find_the_leg_with_or_without_a_snapshot():
    # With a ChanVariable the snapshot check resolves the leg for the handler;
    # without one the handler resolves it itself: same outcome either way.
    for chanvars in ("TICKET_ID=T-9", None):
        t = Tracker()
        t.feed(ev("Newchannel", 1.0, **chan("9.1", state=4, chanvars=chanvars)))
        ringing = t.feed(ev("Newstate", 1.5, **chan("9.1", state=5, chanvars=chanvars)))
        t.feed(ev("BridgeEnter", 2.0, BridgeUniqueid="b9", **chan("9.1", chanvars=chanvars)))
        left = t.feed(ev("Hangup", 3.0, Cause="16", **chan("9.1", chanvars=chanvars)))
        assert [e.kind for e in ringing] == ["leg.ringing"]
        assert [e.kind for e in left] == ["leg.unbridged", "leg.left", "call.ended"]
        assert left[1].leg == "9.1" and left[1].data["cause"] == "16"
        assert t.legs == {} and t.anomalies == {}


def test_core_show_channel_rebuilds_bridges_and_conferences():
    t = Tracker()
    t.feed(ev("CoreShowChannel", 9.0, BridgeId="b7", Application="Dial", **chan("4.1")))
    t.feed(ev("CoreShowChannel", 9.0, BridgeId="b7", Application="Dial", **chan("4.2", "4.1")))
    t.feed(ev("CoreShowChannel", 9.0, BridgeId="", Application="ConfBridge",
              ApplicationData="T-5,default_bridge,default_user", **chan("5.1")))
    assert t.bridges["b7"].members == {"4.1", "4.2"}
    assert t.conferences["T-5"].members == {"5.1"}
    assert t.anomalies["unknown_conference"] == 1  # joined a conference we never saw start


def test_dial_end_busy_fails_a_redirect_towards_that_target():
    t = Tracker()
    for uid in ("1.1", "1.2"):
        t.feed(ev("Newchannel", 1.0, **chan(uid, "1.1")))
        t.feed(ev("BridgeEnter", 1.5, BridgeUniqueid="b1", **chan(uid, "1.1")))
    t.feed(ev("BridgeLeave", 5.0, BridgeUniqueid="b1", **chan("1.1")))
    t.feed(ev("BridgeLeave", 5.0, BridgeUniqueid="b1", **chan("1.2", "1.1")))
    t.feed(ev("Hangup", 5.1, **chan("1.2", "1.1")))
    t.feed(ev("Newchannel", 5.2, **chan("1.3", "1.1", state=0)))
    started = t.feed(ev("DialBegin", 5.3, DialString="110", **chan("1.1"),
                        **chan("1.3", "1.1", state=0, prefix="Dest")))
    assert [(e.kind, e.data["kind"], e.ts) for e in started] == [
        ("transfer.started", "redirect", 5.0)]
    failed = t.feed(ev("DialEnd", 9.0, DialStatus="BUSY", **chan("1.1"),
                       **chan("1.3", "1.1", prefix="Dest")))
    assert [(e.kind, e.data["reason"]) for e in failed] == [("transfer.failed", "busy")]


def test_swapping_out_a_bridges_only_member_keeps_the_bridge():
    # Found by the property test: a Local half alone in a bridge is swapped out
    # by an optimisation; the bridge must stay registered with the new member.
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1", name="Local/a@b-1;1")))
    t.feed(ev("Newchannel", 1.0, **chan("1.2", "1.1")))
    t.feed(ev("BridgeEnter", 2.0, BridgeUniqueid="b1", **chan("1.1", name="Local/a@b-1;1")))
    out = t.feed(ev("BridgeEnter", 3.0, BridgeUniqueid="b1", SwapUniqueid="1.1",
                    **chan("1.2", "1.1")))
    assert [(e.kind, e.leg) for e in out] == [("leg.unbridged", "1.1"), ("leg.bridged", "1.2")]
    assert t.bridges["b1"].members == {"1.2"} and t.legs["1.2"].bridge_id == "b1"
    assert t.check_invariants() == []


def test_a_conference_whose_end_was_lost_goes_with_its_call():
    t = Tracker()
    t.feed(ev("ConfbridgeStart", 1.0, Conference="T-1"))
    t.feed(ev("Newchannel", 1.0, **chan("1.1")))
    t.feed(ev("ConfbridgeJoin", 2.0, Conference="T-1", **chan("1.1")))
    t.feed(ev("ConfbridgeLeave", 3.0, Conference="T-1", **chan("1.1")))
    assert set(t.conferences) == {"T-1"}
    out = t.feed(ev("Hangup", 4.0, **chan("1.1")))  # ConfbridgeEnd never arrives
    assert out[-1].kind == "call.ended"
    assert t.conferences == {} and t.calls == {}


def test_bridge_destroy_with_a_member_left_in_it_unbridges_that_leg():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1")))
    t.feed(ev("BridgeEnter", 2.0, BridgeUniqueid="b1", **chan("1.1")))
    out = t.feed(ev("BridgeDestroy", 3.0, BridgeUniqueid="b1"))  # its BridgeLeave was lost
    assert [(e.kind, e.data["bridge"]) for e in out] == [("leg.unbridged", "b1")]
    assert t.bridges == {} and t.legs["1.1"].bridge_id is None
    assert t.anomalies == {"destroyed_with_members": 1}


def test_ticket_context_set_before_the_id_is_kept():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1.1", state=4)))
    t.feed(ev("VarSet", 1.1, Uniqueid="1.1", Variable="__TICKET_URGENCY", Value="urgent"))
    assert t.tickets == {}
    t.feed(ev("VarSet", 1.2, Uniqueid="1.1", Variable="__TICKET_ID", Value="T-4"))
    t.feed(ev("VarSet", 1.3, Uniqueid="1.1", Variable="__TICKET_ORIGIN", Value="110"))
    assert t.tickets["T-4"].context == {"TICKET_ID": "T-4", "TICKET_URGENCY": "urgent",
                                        "TICKET_ORIGIN": "110"}
    assert t.calls["1.1"].ticket_id == "T-4" and t.legs["1.1"].early_context is None


def _consultation(hold_at: float | None) -> tuple[Tracker, list]:
    """Caller 1 and agent 2 bridged in b1; the agent moves to b2 with a Local half."""
    t, out = Tracker(), []
    feed = lambda e: out.extend(t.feed(e))  # noqa: E731
    feed(ev("Newchannel", 1.0, **chan("1", chanvars="TICKET_ID=T-5")))
    feed(ev("Newchannel", 1.1, **chan("2", "1")))
    for uid in ("1", "2"):
        feed(ev("BridgeEnter", 2.0, BridgeUniqueid="b1", **chan(uid, "1")))
    if hold_at is not None:
        feed(ev("Hold", hold_at, **chan("2", "1")))
    feed(ev("Newchannel", 30.0, **chan("3", "1", state=0, name="Local/110@x-1;1")))
    feed(ev("BridgeEnter", 30.1, BridgeUniqueid="b2", **chan("3", "1", state=0,
                                                             name="Local/110@x-1;1")))
    feed(ev("BridgeLeave", 30.2, BridgeUniqueid="b1", **chan("2", "1")))
    feed(ev("BridgeEnter", 30.3, BridgeUniqueid="b2", **chan("2", "1")))
    return t, out


def test_dtmf_consultation_starts_at_a_recent_hold_else_when_the_agent_leaves():
    _, out = _consultation(hold_at=27.0)
    (started,) = [e for e in out if e.kind == "transfer.started"]
    assert (started.ts, started.data["transferer"], started.data["transferee"]) == (27.0, "2", "1")
    _, out = _consultation(hold_at=5.0)  # a hold long before is no atxfer: not the start
    assert [e.ts for e in out if e.kind == "transfer.started"] == [30.2]
    _, out = _consultation(hold_at=None)
    assert [e.ts for e in out if e.kind == "transfer.started"] == [30.2]


def test_agent_back_with_the_caller_without_the_target_cancels_the_consultation():
    t, out = _consultation(hold_at=27.0)
    out = t.feed(ev("BridgeLeave", 40.0, BridgeUniqueid="b2", **chan("2", "1")))
    out += t.feed(ev("BridgeEnter", 40.1, BridgeUniqueid="b1", **chan("2", "1")))
    (cancelled,) = [e for e in out if e.kind == "transfer.cancelled"]
    assert (cancelled.data["target"], cancelled.data["finished_at"]) == ("3", 40.1)
    assert t.totals["transfers.attended.cancelled"] == 1


def test_a_failed_blind_transfers_caller_bridged_again_is_returned_not_redirected():
    t = Tracker()
    t.feed(ev("Newchannel", 1.0, **chan("1", chanvars="TICKET_ID=T-6")))
    t.feed(ev("Newchannel", 1.1, **chan("2", "1")))
    for uid in ("1", "2"):
        t.feed(ev("BridgeEnter", 2.0, BridgeUniqueid="b1", **chan(uid, "1")))
    t.feed(ev("BlindTransfer", 3.0, Result="Success", Extension="110", Context="x",
              **chan("2", "1", prefix="Transferer"), **chan("1", prefix="Transferee")))
    for uid in ("1", "2"):
        t.feed(ev("BridgeLeave", 3.1, BridgeUniqueid="b1", **chan(uid, "1")))
    t.feed(ev("Hangup", 3.2, Cause="16", **chan("2", "1")))
    t.feed(ev("Newchannel", 3.3, **chan("3", "1", state=0)))
    t.feed(ev("DialBegin", 3.4, **chan("1"), **chan("3", "1", prefix="Dest")))
    t.feed(ev("DialEnd", 5.0, DialStatus="BUSY", **chan("1"), **chan("3", "1", prefix="Dest")))
    t.feed(ev("Hangup", 5.1, Cause="17", **chan("3", "1")))
    out = t.feed(ev("Newchannel", 6.0, **chan("4", "1", state=0)))
    out += t.feed(ev("DialBegin", 6.1, **chan("1"), **chan("4", "1", prefix="Dest")))
    for uid in ("4", "1"):
        out += t.feed(ev("BridgeEnter", 7.0, BridgeUniqueid="b2", **chan(uid, "1")))
    assert [e.kind for e in out if e.kind.startswith("transfer.")] == ["transfer.returned"]
    assert t.totals["transfers.blind.failed"] == t.totals["transfers.blind.returned"] == 1
    assert not t.totals["transfers.redirect.completed"]
