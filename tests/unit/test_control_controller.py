"""Controller rules: authorisation, serialisation, idempotency, errors, recovery."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram

from telephony.control.authz import Principal
from telephony.control.controller import Controller
from telephony.control.errors import (
    BadInput,
    Forbidden,
    NodeUnavailable,
    NotFound,
    Unprocessable,
    WrongState,
)
from telephony.control.observe import SETUP_LABELS, SETUP_METRIC, SetupTimeRecorder
from telephony.control.protocols import InMemoryOpStore
from telephony.control.targets import TargetPolicy
from telephony.control.testing import (
    AGENT,
    AGENT_ID,
    AGENT_UID,
    BRIDGE,
    CALLER_UID,
    FakeDirectory,
    FakeSender,
    blind_success_events,
    chan,
    ev,
    two_party_call,
)

AGENT_P = Principal("agent", AGENT_ID, "12345")
OTHER_AGENT = Principal("agent", "agent12345-2", "12345")
SUPERVISOR = Principal("supervisor", "sup", "12345", endpoint="sup12345-1")
FOREIGN_SUPERVISOR = Principal("supervisor", "sup110", "110", endpoint="sup110-1")
ADMIN = Principal("admin", "root", "12345")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Finished:
    def __init__(self) -> None:
        self.ops: list[Any] = []

    def op_finished(self, op: Any) -> None:
        self.ops.append(op)


@pytest.fixture
def world() -> dict[str, Any]:
    directory = FakeDirectory()
    directory.put(two_party_call())
    sender, store, clock, finished = FakeSender(), InMemoryOpStore(), Clock(), Finished()
    controller = Controller(platform="12345", directory=directory, sender=sender, store=store,
                            targets=TargetPolicy("12345"), clock=clock, listeners=[finished])
    return {"c": controller, "dir": directory, "sender": sender, "store": store,
            "clock": clock, "finished": finished}


async def test_agent_blind_transfer_confirmed_by_events(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    # One action, as the raw floor: if the target fails, hotline-return rings the agent
    # named by BLINDTRANSFER (Asterisk sets it on the caller), no Setvar needed.
    assert world["sender"].sent == [
        {"Action": "BlindTransfer", "Channel": AGENT, "Context": "hotline-xfer", "Exten": "110"}]
    assert op.state == "requested"  # the reply alone confirms nothing
    for event in blind_success_events():
        c.on_event(event)
    await c.drain()
    assert op.outcome == "completed"
    assert world["store"].records[op.op_id]["state"] == "completed"
    assert world["finished"].ops == [op]
    assert c._locks == {}  # per-call locks are dropped when unused


async def test_setup_histogram_recorded(world: dict[str, Any]) -> None:
    registry = CollectorRegistry()
    hist = Histogram(SETUP_METRIC, "transfer setup", SETUP_LABELS, registry=registry)
    world["c"].listeners.append(SetupTimeRecorder(hist))
    op = await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    for event in blind_success_events():
        world["c"].on_event(event)
    labels = {"from": "12345", "to": "110", "mode": "blind", "outcome": "answered"}
    count = registry.get_sample_value(f"{SETUP_METRIC}_count", labels)
    total = registry.get_sample_value(f"{SETUP_METRIC}_sum", labels)
    assert count == 1
    assert total == pytest.approx(op.step_time("answered") - op.created_at)


async def test_other_agents_call_is_forbidden(world: dict[str, Any]) -> None:
    with pytest.raises(Forbidden) as err:
        await world["c"].blind_transfer(OTHER_AGENT, CALLER_UID, "110")
    assert (err.value.status, err.value.code) == (403, "not_your_call")
    with pytest.raises(Forbidden):
        await world["c"].blind_transfer(FOREIGN_SUPERVISOR, CALLER_UID, "110")
    assert world["sender"].sent == []


async def test_supervisor_and_admin_may_act(world: dict[str, Any]) -> None:
    op = await world["c"].blind_transfer(SUPERVISOR, CALLER_UID, "120")
    assert op.initiator == "sup" and world["sender"].sent[-1]["Channel"] == AGENT
    world["dir"].put(two_party_call(call_id="2.1"))
    assert (await world["c"].warm_transfer(ADMIN, "2.1", "110")).kind == "warm_transfer"


async def test_unknown_call_and_leg(world: dict[str, Any]) -> None:
    with pytest.raises(NotFound) as err:
        await world["c"].blind_transfer(AGENT_P, "nope", "110")
    assert (err.value.status, err.value.code) == (404, "call_not_found")
    with pytest.raises(NotFound) as err:
        await world["c"].hangup_leg(SUPERVISOR, CALLER_UID, "9.9")
    assert err.value.code == "leg_not_found"
    with pytest.raises(NotFound):
        world["c"].get(ADMIN, "no-such-op")


async def test_transfer_while_not_bridged_is_409(world: dict[str, Any]) -> None:
    world["dir"].put(two_party_call(bridged=False))
    with pytest.raises(WrongState) as err:
        await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    assert (err.value.status, err.value.code) == (409, "not_bridged")


async def test_a_press_ahead_of_the_bridge_event_waits_for_it(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    world["dir"].put(two_party_call(bridged=False))
    press = asyncio.ensure_future(c.blind_transfer(AGENT_P, CALLER_UID, "110"))
    await asyncio.sleep(0.01)
    assert not press.done() and world["sender"].sent == []
    # Another call's bridge wakes the press, which checks again and keeps waiting.
    c.on_event(ev("BridgeEnter", BridgeUniqueid="other", **chan("PJSIP/x-1", "x1")))
    await asyncio.sleep(0.01)
    assert not press.done()
    # Its own bridge reaches the tracker, then the controller: the press goes through.
    world["dir"].put(two_party_call(bridged=True))
    c.on_event(ev("BridgeEnter", BridgeUniqueid=BRIDGE, **chan(AGENT, AGENT_UID)))
    op = await asyncio.wait_for(press, 1)
    assert op.state == "requested" and world["sender"].names() == ["BlindTransfer"]
    assert not c._bridge_waiters


async def test_the_409_stands_once_the_bridge_settle_time_is_over(
        world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    c.bridge_settle = 0.05
    world["dir"].put(two_party_call(bridged=False))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(WrongState) as err:
        await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    assert err.value.code == "not_bridged" and loop.time() - started >= 0.05
    assert world["sender"].sent == [] and not c._bridge_waiters
    # Other refusals are not waited for: a bad state of another kind answers at once.
    c.bridge_settle = 10.0
    call = two_party_call(bridged=False)
    world["dir"].put(replace(call, legs=(call.legs[0], replace(call.legs[1], up=False))))
    with pytest.raises(WrongState) as err:
        await asyncio.wait_for(c.blind_transfer(AGENT_P, CALLER_UID, "110"), 1)
    assert err.value.code == "no_agent_leg"


async def test_bad_target_is_422(world: dict[str, Any]) -> None:
    with pytest.raises(Unprocessable) as err:
        await world["c"].blind_transfer(AGENT_P, CALLER_UID, "911")
    assert err.value.status == 422
    with pytest.raises(BadInput):
        await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110",
                                        idempotency_key="bad key\r\n")


async def test_node_down_is_503_and_nothing_sent(world: dict[str, Any]) -> None:
    world["sender"].ready = False
    with pytest.raises(NodeUnavailable) as err:
        await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    assert (err.value.status, err.value.code) == (503, "node_unavailable")
    assert world["sender"].sent == [] and world["c"]._ops == {}


async def test_double_press_is_one_operation(world: dict[str, Any]) -> None:
    sender: FakeSender = world["sender"]
    original = sender.send

    async def slow_send(action: Any) -> Any:
        await asyncio.sleep(0.01)  # let the second press queue on the call lock
        return await original(action)

    sender.send = slow_send  # type: ignore[method-assign]
    first, second = await asyncio.gather(
        world["c"].blind_transfer(AGENT_P, CALLER_UID, "110"),
        world["c"].blind_transfer(AGENT_P, CALLER_UID, "110"))
    assert first is second
    assert sender.names() == ["BlindTransfer"]


async def test_repeat_within_window_even_after_done(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    for event in blind_success_events():
        c.on_event(event)
    world["clock"].now += 2.0
    assert await c.blind_transfer(AGENT_P, CALLER_UID, "110") is op
    world["clock"].now += 5.0
    fresh = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    assert fresh is not op
    assert world["sender"].names().count("BlindTransfer") == 2


async def test_idempotency_key_returns_same_op(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110", idempotency_key="req-1")
    world["clock"].now += 3600
    again = await c.blind_transfer(AGENT_P, CALLER_UID, "110", idempotency_key="req-1")
    assert again is op and world["sender"].names() == ["BlindTransfer"]


async def test_second_call_moving_op_conflicts(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    with pytest.raises(WrongState) as err:
        await c.conference(AGENT_P, CALLER_UID, "110")
    assert err.value.code == "operation_in_progress"


async def test_disconnect_mid_action_is_never_resent(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    world["sender"].fail_with = ConnectionError("AMI lost")
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    assert op.interrupted and op.state == "requested"
    assert world["sender"].names() == ["BlindTransfer"]
    world["sender"].fail_with = None
    # A retried press while unresolved is the same operation; nothing is re-sent.
    world["clock"].now += 60
    assert await c.blind_transfer(AGENT_P, CALLER_UID, "110") is op
    assert len(world["sender"].sent) == 1
    # After the reconnect the live state shows the agent still bridged: it never ran.
    await c.reconcile()
    assert op.outcome == "not_executed"
    retry = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    assert retry is not op
    assert world["sender"].names() == ["BlindTransfer", "BlindTransfer"]


async def test_disconnect_then_events_resolve_it(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    world["sender"].fail_with = TimeoutError()
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    for event in blind_success_events():  # it did run; the events say so
        c.on_event(event)
    assert op.outcome == "completed" and op.interrupted


async def test_action_refused_is_409_and_retry_allowed(world: dict[str, Any]) -> None:
    world["sender"].replies["BlindTransfer"] = {"Response": "Error",
                                                "Message": "No such channel"}
    with pytest.raises(WrongState) as err:
        await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    assert err.value.code == "action_rejected"
    world["sender"].replies.clear()
    op = await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    assert op.state == "requested"
    assert world["sender"].names() == ["BlindTransfer"] * 2


async def test_spy_requires_supervisor(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    with pytest.raises(Forbidden) as err:
        await c.spy(AGENT_P, CALLER_UID, "listen")
    assert err.value.code == "supervisor_only"
    with pytest.raises(Forbidden):
        await c.spy(FOREIGN_SUPERVISOR, CALLER_UID, "listen")
    op = await c.spy(SUPERVISOR, CALLER_UID, "whisper")
    await c.drain()
    [sent] = world["sender"].sent
    assert sent["Application"] == "ChanSpy" and sent["Data"] == f"{AGENT},qwE"
    assert op.state == "originating"
    with pytest.raises(BadInput):
        await c.spy(SUPERVISOR, CALLER_UID, "shout")


async def test_force_hangup(world: dict[str, Any]) -> None:
    op = await world["c"].hangup_leg(SUPERVISOR, CALLER_UID, AGENT_UID)
    assert world["sender"].sent == [{"Action": "Hangup", "Channel": AGENT, "Cause": "16"}]
    world["c"].on_event(ev("Hangup", Cause="16", **chan(AGENT, AGENT_UID)))
    assert op.outcome == "hung_up"
    with pytest.raises(Forbidden):
        await world["c"].hangup_leg(AGENT_P, CALLER_UID, AGENT_UID)


async def test_conference_and_pull_in_through_controller(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    sender: FakeSender = world["sender"]
    op = await c.conference(AGENT_P, CALLER_UID)  # default: the other platform
    assert sender.names() == ["Setvar", "Setvar", "Redirect"] and op.target == "110"
    name = op.to_dict()["conference"]
    c.on_event(ev("ConfbridgeJoin", Conference=name, **chan("PJSIP/citizen-00000001",
                                                            CALLER_UID)))
    c.on_event(ev("ConfbridgeJoin", Conference=name, **chan(AGENT, AGENT_UID)))
    await c.drain()
    assert sender.names() == ["Setvar", "Setvar", "Redirect", "Originate"]
    # Pull 120 into the running conference: same operation, a new participant.
    again = await c.conference(AGENT_P, CALLER_UID, "120", purpose="pull_in")
    await c.drain()
    assert again is op
    assert sender.sent[-1]["Channel"] == "Local/120@hotline-out/n"
    assert [p["target"] for p in op.to_dict()["participants"]] == ["110", "120"]
    with pytest.raises(BadInput):
        await c.conference(AGENT_P, CALLER_UID, "110", purpose="pull_in")
    # Leave: the agent's leg is hung up, the conference goes on.
    await c.operation_verb(AGENT_P, op.op_id, "leave")
    assert sender.sent[-1] == {"Action": "Hangup", "Channel": AGENT, "Cause": "16"}


async def test_verbs_check_state_and_support(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.warm_transfer(AGENT_P, CALLER_UID, "110")
    with pytest.raises(WrongState) as err:
        await c.operation_verb(AGENT_P, op.op_id, "complete")  # consult not started
    assert err.value.code == "wrong_state"
    with pytest.raises(WrongState) as err:
        await c.operation_verb(AGENT_P, op.op_id, "leave")
    assert err.value.code == "unsupported_verb"
    with pytest.raises(Forbidden):
        c.get(OTHER_AGENT, op.op_id)


async def test_spy_requested_twice_is_one_originate(world: dict[str, Any]) -> None:
    first = await world["c"].spy(SUPERVISOR, CALLER_UID, "listen")
    second = await world["c"].spy(SUPERVISOR, CALLER_UID, "listen")
    await world["c"].drain()
    assert first is second and world["sender"].names() == ["Originate"]


async def test_failing_store_write_is_logged_not_lost(world: dict[str, Any]) -> None:
    import structlog.testing

    async def broken_save(record: Any) -> None:
        raise OSError("redis down")

    world["store"].save = broken_save
    with structlog.testing.capture_logs() as logs:
        op = await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
        await world["c"].drain()
    assert op.state == "requested"
    assert any(entry["event"] == "control_task_failed" and "redis down" in entry["error"]
               for entry in logs)


async def test_refused_verb_is_409_and_state_restored(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.warm_transfer(AGENT_P, CALLER_UID, "110")
    c.on_event(ev("DialBegin", **chan("Local/110@hotline-out-00000004;2", "1764380000.5")))
    world["sender"].replies["CancelAtxfer"] = {"Response": "Error", "Message": "nope"}
    with pytest.raises(WrongState) as err:
        await c.operation_verb(AGENT_P, op.op_id, "cancel")
    assert err.value.code == "action_rejected"
    assert op.state == "consult_ringing"


async def test_concurrent_pull_in_presses_add_one_party(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.conference(AGENT_P, CALLER_UID)
    name = op.to_dict()["conference"]
    for channel, uid in (("PJSIP/citizen-00000001", CALLER_UID), (AGENT, AGENT_UID)):
        c.on_event(ev("ConfbridgeJoin", Conference=name, **chan(channel, uid)))
    await c.drain()
    results = await asyncio.gather(*(c.conference(AGENT_P, CALLER_UID, "119",
                                                  purpose="pull_in") for _ in range(3)))
    await c.drain()
    assert all(r is op for r in results)
    assert [a["Channel"] for a in world["sender"].sent if a["Action"] == "Originate"] == [
        "Local/110@hotline-out/n", "Local/119@hotline-out/n"]


async def test_reconcile_closes_ops_of_vanished_calls(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    op = await c.conference(AGENT_P, CALLER_UID)
    del world["dir"].calls[CALLER_UID]
    await c.reconcile()
    await c.drain()
    assert (op.state, op.outcome) == ("call_ended", "call_ended")
    assert world["store"].records[op.op_id]["state"] == "call_ended"
    assert world["finished"].ops == [op]


async def test_refused_originate_marks_party_failed(world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    world["sender"].replies["Originate"] = {"Response": "Error",
                                            "Message": "Originate failed"}
    op = await c.conference(AGENT_P, CALLER_UID, "120", purpose="pull_in")
    name = op.to_dict()["conference"]
    for channel, uid in (("PJSIP/citizen-00000001", CALLER_UID), (AGENT, AGENT_UID)):
        c.on_event(ev("ConfbridgeJoin", Conference=name, **chan(channel, uid)))
    await c.drain()
    [party] = op.to_dict()["participants"]
    assert (party["state"], party["reason"]) == ("failed", "Originate failed")
    assert op.state == "active"  # caller and agent keep talking


class WireSender(FakeSender):
    """Writes synchronously like the AMI link, then waits for replies released by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[asyncio.Future[Any]] = []

    def submit(self, action: Any) -> asyncio.Future[Any]:
        self.sent.append(dict(action))  # on the wire now, before any reply
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append(reply)
        return reply


async def test_setvars_are_pipelined_with_the_action_after_them(world: dict[str, Any]) -> None:
    sender = WireSender()
    world["c"].sender = sender
    press = asyncio.ensure_future(world["c"].conference(AGENT_P, CALLER_UID))
    for _ in range(5):
        await asyncio.sleep(0)
    # All three actions are on the wire, in order, before Asterisk has answered any.
    assert sender.names() == ["Setvar", "Setvar", "Redirect"]
    # The press waits for the Redirect's reply alone: the one that decides it.
    sender.waiting[-1].set_result({"Response": "Success"})
    op = await press
    assert op.state == "redirecting" and not op.interrupted
    for reply in sender.waiting[:-1]:
        reply.set_result({"Response": "Success"})
    await world["c"].drain()
    assert not any("setvar_refused" in s.detail for s in op.steps)


async def test_a_link_gone_before_the_pipelined_setvars_leave_is_judged_on_the_next_action(
        world: dict[str, Any]) -> None:
    class NoLink(FakeSender):
        def submit(self, action: Any) -> Any:
            raise ConnectionError("AMI lost")

    world["c"].sender = NoLink()
    op = await world["c"].conference(AGENT_P, CALLER_UID)
    await world["c"].drain()
    assert op.interrupted and op.state == "redirecting"
    assert [s.detail.get("interrupted") for s in op.steps if s.detail.get("interrupted")] == [
        "Redirect"]


async def test_refused_setvar_is_noted_and_the_action_after_it_decides(
        world: dict[str, Any]) -> None:
    world["sender"].replies["Setvar"] = {"Response": "Error", "Message": "No such channel"}
    op = await world["c"].conference(AGENT_P, CALLER_UID)
    assert op.state == "redirecting"  # the Redirect went through
    await world["c"].drain()  # the Setvars' replies are read in the background
    refused = [s.detail["setvar_refused"] for s in op.steps if "setvar_refused" in s.detail]
    assert refused == ["HOTLINE_CONF_ROLE", "HOTLINE_CONF_ROLE"]
    assert not op.done and not op.interrupted


async def test_refused_action_after_setvar_stops_the_plan(world: dict[str, Any]) -> None:
    world["sender"].replies["Redirect"] = {"Response": "Error", "Message": "nope"}
    with pytest.raises(WrongState):
        await world["c"].conference(AGENT_P, CALLER_UID)
    await world["c"].drain()
    assert world["sender"].names() == ["Setvar", "Setvar", "Redirect"]  # no Originate


async def test_no_collection_starts_while_an_operation_sends_its_actions(world: dict[str, Any]):
    import gc

    sender: FakeSender = world["sender"]
    original = sender.submit
    collector_on: list[bool] = []

    async def reply_later(reply: Any) -> Any:
        await asyncio.sleep(0)  # another task (the event pump) runs meanwhile
        return await reply

    def watching_submit(action: Any) -> Any:  # the moment an action is written
        collector_on.append(gc.isenabled())
        return reply_later(original(action))

    sender.submit = watching_submit  # type: ignore[method-assign]
    assert gc.isenabled()
    await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    assert collector_on == [False]  # BlindTransfer
    assert gc.isenabled()  # on again once the press is done


async def test_the_collector_comes_back_when_an_operation_fails(world: dict[str, Any]):
    import gc

    world["sender"].replies["BlindTransfer"] = {"Response": "Error", "Message": "No such channel"}
    with pytest.raises(WrongState):
        await world["c"].blind_transfer(AGENT_P, CALLER_UID, "110")
    assert gc.isenabled()
    world["sender"].replies.clear()

    sender: FakeSender = world["sender"]
    original = sender.send

    async def stuck_send(action: Any) -> Any:
        await asyncio.sleep(3600)  # a node that never answers
        return await original(action)

    sender.send = stuck_send  # type: ignore[method-assign]
    press = asyncio.ensure_future(world["c"].blind_transfer(AGENT_P, CALLER_UID, "110"))
    await asyncio.sleep(0.01)
    assert not gc.isenabled()
    press.cancel()  # e.g. the HTTP client went away
    with pytest.raises(asyncio.CancelledError):
        await press
    assert gc.isenabled()


async def test_old_finished_operations_are_forgotten_with_their_idempotency_keys(
        world: dict[str, Any]) -> None:
    c: Controller = world["c"]
    c.history, c.dedupe_seconds = 2, 0
    ops = []
    for n in range(4):
        op = await c.blind_transfer(AGENT_P, CALLER_UID, "110", idempotency_key=f"press-{n}")
        for event in blind_success_events():
            c.on_event(event)
        world["clock"].now += 1
        ops.append(op)
    assert list(c._ops) == [ops[2].op_id, ops[3].op_id]
    assert set(c._by_key) == {(AGENT_ID, "press-2"), (AGENT_ID, "press-3")}
    assert set(c._key_of) == {ops[2].op_id, ops[3].op_id}
    # A remembered key is the same operation; a forgotten one is a new press.
    assert await c.blind_transfer(AGENT_P, CALLER_UID, "110", idempotency_key="press-3") is ops[3]
    again = await c.blind_transfer(AGENT_P, CALLER_UID, "110", idempotency_key="press-0")
    assert again not in ops
