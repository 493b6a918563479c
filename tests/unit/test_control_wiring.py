"""The controller's wiring into the service, as found on the real lab:
operations carry their ticket id, each step is copied onto the ticket timeline,
and an AMI Error reply reaches the controller as a reply (not an exception)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from panoramisk.message import Message

from telephony.ami import AmiDisconnected, AmiError, AmiTimeout
from telephony.control.authz import Principal
from telephony.control.controller import Controller
from telephony.control.errors import WrongState
from telephony.control.protocols import InMemoryOpStore
from telephony.control.targets import TargetPolicy
from telephony.control.testing import (
    AGENT_ID,
    CALLER_UID,
    FakeDirectory,
    FakeSender,
    blind_success_events,
    two_party_call,
)
from telephony.service import AmiSender, RedisOpStore

AGENT_P = Principal("agent", AGENT_ID, "12345")


class TimelineSpy:
    """Stands in for RedisStore: records what would be written."""

    def __init__(self) -> None:
        self.ops: dict[str, dict[str, Any]] = {}
        self.timeline: list[tuple[str, str, str, dict[str, Any]]] = []

    def update_op(self, op_id: str, record: dict[str, Any]) -> None:
        self.ops[op_id] = record

    def append_timeline(self, ticket_id: str, kind: str, ts: str,
                        record: dict[str, Any]) -> None:
        self.timeline.append((ticket_id, kind, ts, record))


def controller(store: Any, sender: Any = None) -> Controller:
    directory = FakeDirectory()
    directory.put(two_party_call())
    return Controller(platform="12345", directory=directory, sender=sender or FakeSender(),
                      store=store, targets=TargetPolicy("12345"))


async def test_operations_carry_the_calls_ticket_id() -> None:
    c = controller(InMemoryOpStore())
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    assert op.ticket_id == "T-0001"
    assert op.to_dict()["ticket_id"] == "T-0001"


async def test_each_step_lands_once_on_the_ticket_timeline_in_order() -> None:
    spy = TimelineSpy()
    c = controller(RedisOpStore(spy))  # type: ignore[arg-type]
    op = await c.blind_transfer(AGENT_P, CALLER_UID, "110")
    for event in blind_success_events():
        c.on_event(event)
    await c.drain()
    await RedisOpStore.save(c.store, op.to_dict())  # a late re-save adds nothing
    kinds = [kind for _, kind, _, _ in spy.timeline]
    assert kinds == [f"op.blind_transfer.{s.state}" for s in op.steps]
    assert kinds[-1] == "op.blind_transfer.completed"
    assert {ticket for ticket, _, _, _ in spy.timeline} == {"T-0001"}
    assert all(rec["op_id"] == op.op_id for _, _, _, rec in spy.timeline)
    assert [float(ts) for _, _, ts, _ in spy.timeline] == pytest.approx(
        [s.at for s in op.steps], abs=1e-6)
    assert spy.ops[op.op_id]["state"] == "completed"


async def test_an_operation_without_a_ticket_writes_no_timeline() -> None:
    spy = TimelineSpy()
    store = RedisOpStore(spy)  # type: ignore[arg-type]
    await store.save({"op_id": "o1", "kind": "hangup", "ticket_id": None, "call_id": "c",
                      "done": True, "steps": [{"state": "created", "at": 1.0}]})
    assert spy.timeline == [] and "o1" in spy.ops


class FakeSession:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        self.ready.set()

    def submit(self, action: dict[str, Any], *, check: bool = True) -> Any:
        self.calls.append({"action": action, "check": check})  # written now
        return self._reply(check)

    async def _reply(self, check: bool) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        if check and self.outcome.get("Response") == "Error":
            raise AmiError("refused", response=self.outcome)
        return self.outcome


async def test_ami_error_reply_is_returned_and_the_operation_is_rejected() -> None:
    # Asterisk 22 without an atxfer feature code answers Atxfer with Error: that must be a
    # clean 409 action_rejected, not an exception escaping the HTTP handler (a 500).
    reply = Message({"Response": "Error", "Message": "No attended transfer feature code found"})
    session = FakeSession(reply)
    sender = AmiSender(session)  # type: ignore[arg-type]
    assert await sender.send({"Action": "Atxfer"}) is reply
    assert session.calls[0]["check"] is False
    c = controller(InMemoryOpStore(), sender)
    with pytest.raises(WrongState) as err:
        await c.warm_transfer(AGENT_P, CALLER_UID, "110")
    assert err.value.code == "action_rejected"
    assert [o.state for o in c._ops.values()] == ["rejected"]


@pytest.mark.parametrize(("raised", "expected"), [
    (AmiDisconnected("gone"), ConnectionError),
    (AmiTimeout("slow"), TimeoutError),
])
async def test_a_cut_off_action_is_a_connection_or_timeout_error(
        raised: BaseException, expected: type[BaseException]) -> None:
    sender = AmiSender(FakeSession(raised))  # type: ignore[arg-type]
    with pytest.raises(expected):
        await sender.send({"Action": "BlindTransfer"})


async def test_no_link_to_write_to_is_a_connection_error_at_once() -> None:
    class Unlinked(FakeSession):
        def submit(self, action: dict[str, Any], *, check: bool = True) -> Any:
            raise AmiDisconnected("not connected")

    sender = AmiSender(Unlinked(None))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        sender.submit({"Action": "Setvar"})  # before anything is awaited
