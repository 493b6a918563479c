"""What a domain fact writes (telephony.fact_writes), the same in either store."""

from __future__ import annotations

from typing import Any

import pytest

from telephony.domain_events import CALL_ENDED, CALL_STARTED, DomainEvent
from telephony.fact_writes import persist_fact, writes_anything


class SinkSpy:
    """Records the buffered writes a fact asks for."""

    platform = "12345"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def append_timeline(self, ticket_id: str, kind: str, timestamp: str,
                        record: dict[str, Any] | None = None) -> None:
        self.calls.append(("append_timeline", ticket_id, kind, timestamp, record))

    def put_call(self, call_id: str, record: dict[str, Any]) -> None:
        self.calls.append(("put_call", call_id, record))

    def end_call(self, call_id: str, record: dict[str, Any]) -> None:
        self.calls.append(("end_call", call_id, record))

    def ticket_ended(self, ticket_id: str, timestamp: str) -> None:
        self.calls.append(("ticket_ended", ticket_id, timestamp))


def test_a_fact_becomes_one_timeline_step_with_its_own_kind_kept() -> None:
    spy = SinkSpy()
    fact = DomainEvent("transfer.started", 1732848000.25, call_id="c1", ticket_id="T-1",
                       leg="u1", data={"kind": "blind", "ts": 9.0, "target": "110"})
    persist_fact(spy, fact)
    persist_fact(spy, fact._replace(ticket_id=None))  # no ticket: no timeline step
    assert spy.calls == [("append_timeline", "T-1", "transfer.started", "1732848000.250000",
                          {"call_id": "c1", "leg": "u1", "ts": 9.0, "target": "110",
                           "detail_kind": "blind"})]
    assert fact.data == {"kind": "blind", "ts": 9.0, "target": "110"}  # not mutated


def test_a_plain_tuple_in_field_order_writes_the_same_as_the_fact() -> None:
    fact = DomainEvent("leg.bridged", 1732848000.000001, "c1", "T-1", "u1", {"bridge": "b"})
    as_fact, as_tuple = SinkSpy(), SinkSpy()
    persist_fact(as_fact, fact)
    persist_fact(as_tuple, tuple(fact))
    assert as_fact.calls == as_tuple.calls
    assert as_fact.calls[0][3] == "1732848000.000001"  # the µs survive


def test_call_start_and_end_write_the_call_record_even_without_a_ticket() -> None:
    spy = SinkSpy()
    persist_fact(spy, DomainEvent(CALL_STARTED, 10.5, "c1"))
    persist_fact(spy, DomainEvent(CALL_ENDED, 20.25, "c1", data={"legs": 2}))
    persist_fact(spy, DomainEvent(CALL_ENDED, 21.0, None))  # no call id: nothing to end
    assert spy.calls == [
        ("put_call", "c1", {"started": 10.5, "platform": "12345", "ticket_id": ""}),
        ("end_call", "c1", {"ended": 20.25, "legs": 2}),
    ]


@pytest.mark.parametrize(("fact", "writes"), [
    (DomainEvent("leg.ringing", 1.0, "c1", None, "u1"), False),
    (DomainEvent("leg.ringing", 1.0, "c1", "T-1", "u1"), True),
    (DomainEvent(CALL_STARTED, 1.0, "c1"), True),
    (DomainEvent(CALL_STARTED, 1.0, None), False),
    (DomainEvent(CALL_ENDED, 1.0, "c1"), True),
    (DomainEvent("conference.started", 1.0, None, None, None, {"conference": "x"}), False),
])
def test_writes_anything_agrees_with_persist_fact(fact: DomainEvent, writes: bool) -> None:
    spy = SinkSpy()
    persist_fact(spy, fact)
    assert writes_anything(fact) is writes is bool(spy.calls)
