"""telephony.linkage.order: the v1 工单/警单 schema, validate_order, building, status rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from telephony.linkage import order as lo
from telephony.linkage.codes import org_code_check_char, uscc_check_char
from telephony.linkage.order import (
    Order,
    OrderError,
    Step,
    Unit,
    build_order,
    mask_number,
    next_status,
    timeline_summary,
    validate_order,
)
from telephony.ticket_context import TicketContext

CST = timezone(timedelta(hours=8))
T0 = datetime(2024, 5, 1, 20, 15, 0, tzinfo=CST)


def make_uscc(head8: str, org8: str) -> str:
    org = org8 + org_code_check_char(org8)
    return head8 + org + uscc_check_char(head8 + org)


# Fictitious units: codes built with the GB 32100 / GB 11714 algorithms (test data, not
# real registrations). Real published codes are exercised in test_linkage_codes.py.
HOTLINE_UNIT = make_uscc("11440106", "MB2C9324")  # a 12345 centre (机关, 天河区)
POLICE_UNIT = make_uscc("11440106", "MB2D0117")  # a police station (机关, 天河区)
STREET_UNIT = make_uscc("11440106", "MB2E3350")  # a street office
BAD_USCC = HOTLINE_UNIT[:17] + ("0" if HOTLINE_UNIT[17] != "0" else "1")


def at(minutes: int) -> str:
    return lo.format_time(T0 + timedelta(minutes=minutes))


def minimal_gongdan() -> dict[str, Any]:
    return {
        "schema_version": "1",
        "order": {"id": "GD-440106-0001", "kind": "工单", "origin": "12345",
                  "created_at": at(0), "links": {"ticket_id": "T-20240501-0001"}},
        "codes": {"division": "440106", "units": {"receiving": {"uscc": HOTLINE_UNIT}},
                  "category": {"code": "600603"}},
        "content": {"caller": {"callback": "13800138000", "private": False},
                    "location": {"address": "天河路100号"}, "matter": "路灯不亮",
                    "urgency": "normal"},
        "handling": {"status": [{"status": "受理", "at": at(0),
                                 "unit": {"uscc": HOTLINE_UNIT}}]},
    }


def minimal_jingdan() -> dict[str, Any]:
    return {
        "schema_version": "1",
        "order": {"id": "JD-440106-0001", "kind": "警单", "origin": "110",
                  "created_at": at(0), "links": {"ticket_id": "T-20240501-0002"}},
        "codes": {"division": "440106", "units": {"receiving": {"uscc": POLICE_UNIT}},
                  "category": {"code": "600303", "police_class": "6"}},
        "content": {"caller": {"callback": "13900139000", "private": True},
                    "location": {"address": "天河区某小区3栋"}, "matter": "邻里噪音纠纷",
                    "urgency": "normal"},
        "handling": {"status": [{"status": "受理", "at": at(0),
                                 "unit": {"uscc": POLICE_UNIT}}]},
    }


def full_jingdan() -> dict[str, Any]:
    """Every optional field filled: a 警单 handed to 12345 and worked to 办结."""
    doc = minimal_jingdan()
    doc["order"]["links"]["orders"] = ["GD-440106-0001"]
    doc["codes"]["units"]["handling"] = {"uscc": STREET_UNIT, "name": "某街道办事处"}
    doc["codes"]["units"]["receiving"]["name"] = "某派出所"
    doc["codes"]["category"]["name"] = "邻里纠纷"
    doc["content"]["caller"]["name"] = "李先生"
    doc["content"]["location"].update({"lon": 113.3612, "lat": 23.1247, "crs": "WGS84"})
    doc["content"]["safety_notes"] = ["对方情绪激动", "家中有老人"]
    doc["content"]["timeline"] = [{"at": at(0), "kind": "call.started"},
                                  {"at": at(1), "kind": "queue.answered"},
                                  {"at": at(4), "kind": "transfer.completed"}]
    doc["handling"]["status"] += [
        {"status": "派单", "at": at(5), "unit": {"uscc": POLICE_UNIT}},
        {"status": "签收", "at": at(20), "unit": {"uscc": STREET_UNIT}},
        {"status": "处理中", "at": at(60), "unit": {"uscc": STREET_UNIT}, "note": "已上门"},
        {"status": "已反馈", "at": at(120), "unit": {"uscc": STREET_UNIT}},
        {"status": "办结", "at": at(180), "unit": {"uscc": POLICE_UNIT}},
    ]
    doc["handling"]["deadlines"] = {"sign_off_by": at(30), "feedback_by": at(24 * 60),
                                    "complete_by": at(3 * 24 * 60)}
    return doc


def paths(problems: list[lo.Problem]) -> list[str]:
    return [p.path for p in problems]


# ---------------------------------------------------------------- the schema itself


def test_schema_is_valid_draft_2020_12() -> None:
    schema = lo.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert lo.validator().format_checker is lo.FORMAT_CHECKER
    assert set(lo.FORMAT_CHECKER.checkers) == {"gb2260", "uscc", "date-time"}


@pytest.mark.parametrize("make", [minimal_gongdan, minimal_jingdan, full_jingdan])
def test_valid_orders(make: Any) -> None:
    assert validate_order(make()) == []


def test_a_valid_order_survives_json() -> None:
    doc = full_jingdan()
    again = json.loads(json.dumps(doc, ensure_ascii=False))
    assert validate_order(again) == []


# ---------------------------------------------------------------- every required field


def _required_fields(schema: dict[str, Any], node: Any, sub: Any, path: list[str | int],
                     out: list[tuple[list[str | int], str]]) -> None:
    """(path to an object, required name) for every required field present in `node`."""
    while "$ref" in sub:
        sub = lo.schema()["$defs"][sub["$ref"].rsplit("/", 1)[1]]
    if isinstance(node, dict):
        for name in sub.get("required", []):
            out.append((path, name))
        for name, value in node.items():
            if name in sub.get("properties", {}):
                _required_fields(schema, value, sub["properties"][name], [*path, name], out)
    elif isinstance(node, list) and "items" in sub:
        for i, value in enumerate(node[:1]):
            _required_fields(schema, value, sub["items"], [*path, i], out)


def _all_required(doc: dict[str, Any]) -> list[tuple[list[str | int], str]]:
    out: list[tuple[list[str | int], str]] = []
    _required_fields(lo.schema(), doc, lo.schema(), [], out)
    return out


def _json_path(path: list[str | int], name: str) -> str:
    return lo._path("$", *path, name)


REQUIRED = _all_required(full_jingdan())


def test_the_walk_finds_the_required_fields() -> None:
    found = {_json_path(p, n) for p, n in REQUIRED}
    assert {"$.schema_version", "$.order.id", "$.order.links.ticket_id", "$.codes.division",
            "$.codes.units.receiving.uscc", "$.codes.category.code",
            "$.content.caller.callback", "$.content.caller.private",
            "$.content.location.address", "$.content.urgency", "$.content.timeline[0].kind",
            "$.handling.status", "$.handling.status[0].unit",
            "$.handling.status[0].unit.uscc"} <= found
    assert len(found) >= 30


@pytest.mark.parametrize(("path", "name"), REQUIRED,
                         ids=[_json_path(p, n) for p, n in REQUIRED])
def test_each_required_field_missing_is_named(path: list[str | int], name: str) -> None:
    doc = full_jingdan()
    node: Any = doc
    for part in path:
        node = node[part]
    del node[name]
    problems = validate_order(doc)
    want = _json_path(path, name)
    assert any(p.path == want and p.message == f"'{name}' is required" for p in problems), (
        want, problems)


def test_returned_needs_a_reason_in_the_schema() -> None:
    doc = minimal_gongdan()
    doc["handling"]["status"] += [
        {"status": "派单", "at": at(1), "unit": {"uscc": HOTLINE_UNIT}},
        {"status": "退回", "at": at(2), "unit": {"uscc": POLICE_UNIT}},
    ]
    assert validate_order(doc) == [
        lo.Problem("$.handling.status[2].reason", "'reason' is required")]
    doc["handling"]["status"][2]["reason"] = "不属于本单位管辖"
    assert validate_order(doc) == []


# ---------------------------------------------------------------- bad values


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node: Any = doc
    parts: list[Any] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return doc


@pytest.mark.parametrize(("field", "value", "path", "message"), [
    ("codes.division", "999999", "$.codes.division",
     "not a valid gb2260: 999999 is not in the GB/T 2260 table (no province 990000)"),
    ("codes.division", "440199", "$.codes.division",
     "not a valid gb2260: 440199 is not in the GB/T 2260 table (prefecture 440100 广州市 is)"),
    ("codes.division", "4401", "$.codes.division", "not a valid gb2260: length 4, must be 6 or 12"),
    ("codes.units.receiving.uscc", BAD_USCC, "$.codes.units.receiving.uscc",
     f"not a valid uscc: wrong check character: expected {HOTLINE_UNIT[17]}, got {BAD_USCC[17]}"),
    ("codes.units.receiving.uscc", "91440300708461I36T", "$.codes.units.receiving.uscc",
     "not a valid uscc: letter I is never used (position 15)"),
    ("handling.status.0.unit.uscc", "9144030070846113", "$.handling.status[0].unit.uscc",
     "not a valid uscc: length 16, must be 18"),
    ("order.created_at", "2024-05-01 20:15:00", "$.order.created_at",
     "not a valid date-time: '2024-05-01 20:15:00' is not an RFC 3339 date-time with a "
     "time zone"),
    ("order.created_at", "2024-05-01T20:15:00", "$.order.created_at",
     "not a valid date-time: '2024-05-01T20:15:00' is not an RFC 3339 date-time with a "
     "time zone"),
    ("order.created_at", "2024-02-30T20:15:00+08:00", "$.order.created_at",
     "not a valid date-time: day is out of range for month"),
    ("order.kind", "派单", "$.order.kind", "'派单' is not one of: 工单, 警单"),
    ("order.origin", "110", "$.order.origin", "must be '12345', got '110'"),
    ("order.id", "GD 0001", "$.order.id",
     "'GD 0001' does not match '^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$'"),
    ("schema_version", "2", "$.schema_version", "must be '1', got '2'"),
    ("codes.category.code", "60060", "$.codes.category.code",
     "'60060' does not match '^[1-9][0-9]{5}$'"),
    ("codes.category.police_class", "1", "$.codes.category.police_class",
     "police class '1' does not match category code '600603' (the class is its first digit)"),
    ("content.urgency", "high", "$.content.urgency",
     "'high' is not one of: normal, urgent, critical"),
    ("content.matter", "", "$.content.matter", "'' should be non-empty"),
    ("content.matter", "长" * 2001, "$.content.matter", None),
    ("content.caller.callback", "138-0013-8000", "$.content.caller.callback", None),
    ("content.caller.private", "yes", "$.content.caller.private", "'yes' is not of type 'boolean'"),
    ("content.location.lon", 113.36, "$.content.location", "'lat' is a dependency of 'lon'"),
    ("content.location.lat", 123.0, "$.content.location", "'lon' is a dependency of 'lat'"),
    ("content.safety_notes", ["x"] * 11, "$.content.safety_notes", None),
    ("content.timeline", [{"at": "2024-05-01T20:15:00+08:00", "kind": "Call Started"}],
     "$.content.timeline[0].kind", None),
    ("handling.status", [], "$.handling.status", "[] should be non-empty"),
    ("handling.status.0.status", "已完成", "$.handling.status[0].status", None),
    ("handling.deadlines", {"reply_by": "2024-05-02T20:15:00+08:00"}, "$.handling.deadlines",
     None),
    ("content.extra", 1, "$.content",
     "Additional properties are not allowed ('extra' was unexpected)"),
])
def test_bad_values_are_problems(field: str, value: Any, path: str, message: str | None) -> None:
    problems = validate_order(_set(minimal_gongdan(), field, value))
    assert problems, field
    hit = [p for p in problems if p.path == path]
    assert hit, problems
    if message is not None:
        assert hit[0].message == message


def test_jingdan_from_12345_is_refused() -> None:
    doc = _set(minimal_jingdan(), "order.origin", "12345")
    assert validate_order(doc) == [lo.Problem("$.order.origin", "must be '110', got '12345'")]


def test_police_class_matches_the_code_for_every_class() -> None:
    for digit in "123456789":
        doc = minimal_gongdan()
        doc["codes"]["category"] = {"code": digit + "00100", "police_class": digit}
        assert validate_order(doc) == [], digit
        doc["codes"]["category"]["police_class"] = "9" if digit != "9" else "1"
        assert paths(validate_order(doc)) == ["$.codes.category.police_class"]


def test_not_an_object() -> None:
    assert validate_order([]) == [lo.Problem("$", "[] is not of type 'object'")]
    assert paths(validate_order({})) == [
        "$.codes", "$.content", "$.handling", "$.order", "$.schema_version"]


def test_several_problems_are_all_reported() -> None:
    doc = minimal_gongdan()
    doc["codes"]["division"] = "999999"
    doc["codes"]["units"]["receiving"]["uscc"] = BAD_USCC
    del doc["content"]["matter"]
    assert paths(validate_order(doc)) == [
        "$.codes.division", "$.codes.units.receiving.uscc", "$.content.matter"]


def test_deadlines_in_order() -> None:
    doc = minimal_gongdan()
    doc["handling"]["deadlines"] = {"sign_off_by": at(60), "feedback_by": at(30),
                                    "complete_by": at(-5)}
    assert validate_order(doc) == [
        lo.Problem("$.handling.deadlines.feedback_by", "feedback_by is before sign_off_by"),
        lo.Problem("$.handling.deadlines.complete_by",
                   "complete_by is before the order was created"),
        lo.Problem("$.handling.deadlines.complete_by", "complete_by is before feedback_by"),
    ]


# ---------------------------------------------------------------- the status machine


def steps(*names: str) -> list[Step]:
    return [Step(n, T0 + timedelta(minutes=i), HOTLINE_UNIT,
                 reason="不属于本单位管辖" if n == "退回" else "") for i, n in enumerate(names)]


@pytest.mark.parametrize("sequence", [
    ("受理",),
    ("受理", "派单"),
    ("受理", "派单", "签收", "处理中", "已反馈", "办结"),
    ("受理", "派单", "签收", "已反馈", "办结"),
    ("受理", "派单", "签收", "处理中", "处理中", "已反馈", "办结"),
    ("受理", "派单", "退回", "派单", "签收", "处理中", "已反馈", "办结"),
    ("受理", "派单", "签收", "退回", "派单", "签收", "已反馈", "办结"),
    ("受理", "派单", "签收", "处理中", "退回", "派单"),
    ("受理", "派单", "签收", "处理中", "已反馈", "处理中", "已反馈", "办结"),
])
def test_allowed_histories(sequence: tuple[str, ...]) -> None:
    history = steps(*sequence)
    for i in range(len(history)):
        assert next_status(history[:i], history[i]) is None, (sequence, i)


@pytest.mark.parametrize(("before", "new", "error"), [
    ((), "派单", "the first status must be 受理, not 派单"),
    ((), "办结", "the first status must be 受理, not 办结"),
    (("受理",), "签收", "签收 may not follow 受理 (allowed: 派单)"),
    (("受理",), "退回", "退回 may not follow 受理 (allowed: 派单)"),
    (("受理",), "受理", "受理 opens a history; it may not follow 受理"),
    (("受理", "派单"), "派单", "派单 may not follow 派单 (allowed: 签收, 退回)"),
    (("受理", "派单"), "处理中", "处理中 may not follow 派单 (allowed: 签收, 退回)"),
    (("受理", "派单", "签收", "处理中"), "办结", "办结 only after 已反馈 (last status is 处理中)"),
    (("受理", "派单", "签收"), "办结", "办结 only after 已反馈 (last status is 签收)"),
    (("受理", "派单", "退回"), "办结", "办结 only after 已反馈 (last status is 退回)"),
    (("受理", "派单", "退回"), "签收", "签收 may not follow 退回 (allowed: 派单)"),
    (("受理", "派单", "签收", "已反馈"), "退回",
     "退回 may not follow 已反馈 (allowed: 办结, 处理中)"),
    (("受理", "派单", "签收", "已反馈", "办结"), "处理中",
     "办结 is final: 处理中 may not follow it"),
    (("受理", "派单", "签收", "已反馈", "办结"), "办结", "办结 is final: 办结 may not follow it"),
    (("受理",), "完成",
     "unknown status '完成'; one of 受理, 派单, 签收, 处理中, 已反馈, 办结, 退回"),
])
def test_refused_transitions(before: tuple[str, ...], new: str, error: str) -> None:
    history = steps(*before)
    step = Step(new, T0 + timedelta(hours=1), HOTLINE_UNIT,
                reason="x" if new == "退回" else "")
    assert next_status(history, step) == error
    assert next_status(list(before), new) == error or new == "退回"


def test_returned_needs_a_reason() -> None:
    history = steps("受理", "派单")
    assert next_status(history, "退回") == "退回 needs a reason"
    assert next_status(history, Step("退回", T0 + timedelta(hours=1), reason="  ")) == (
        "退回 needs a reason")
    assert next_status(history, {"status": "退回", "reason": "非本辖区"}) is None


def test_time_may_not_go_backwards() -> None:
    history = steps("受理", "派单")
    early = Step("签收", T0 - timedelta(minutes=1), POLICE_UNIT)
    assert next_status(history, early) == (
        "签收 at 2024-05-01T20:14:00.000+08:00 is before the previous step "
        "(派单 at 2024-05-01T20:16:00.000+08:00)")
    same = Step("签收", T0 + timedelta(minutes=1), POLICE_UNIT)
    assert next_status(history, same) is None


def test_bare_names_and_json_steps_are_accepted() -> None:
    assert next_status(["受理", "派单", "签收", "已反馈"], "办结") is None
    assert next_status(minimal_gongdan()["handling"]["status"],
                       {"status": "派单", "at": at(1), "unit": {"uscc": HOTLINE_UNIT}}) is None
    assert lo.current_status(["受理", "派单"]) == "派单"
    assert lo.current_status([]) is None


def test_history_problems_in_a_document() -> None:
    doc = minimal_gongdan()
    doc["handling"]["status"] += [
        {"status": "已反馈", "at": at(5), "unit": {"uscc": HOTLINE_UNIT}},
        {"status": "派单", "at": at(4), "unit": {"uscc": HOTLINE_UNIT}},
    ]
    assert validate_order(doc) == [
        lo.Problem("$.handling.status[1].status", "已反馈 may not follow 受理 (allowed: 派单)"),
        lo.Problem("$.handling.status[2].status",
                   "派单 may not follow 已反馈 (allowed: 办结, 处理中)"),
    ]
    doc["handling"]["status"] = [{"status": "派单", "at": at(0), "unit": {"uscc": HOTLINE_UNIT}}]
    assert validate_order(doc) == [
        lo.Problem("$.handling.status[0].status", "the first status must be 受理, not 派单")]


@given(st.lists(st.sampled_from(lo.STATUSES), max_size=12))
def test_accepted_histories_keep_the_rules(names: list[str]) -> None:
    history: list[Step] = []
    for name in names:
        step = Step(name, reason="r" if name == "退回" else "")
        if next_status(history, step) is None:
            history.append(step)
    seq = [s.status for s in history]
    if seq:
        assert seq[0] == "受理"
        assert seq.count("受理") == 1
    for i, name in enumerate(seq):
        if name == "办结":
            assert i == len(seq) - 1 and seq[i - 1] == "已反馈"
        if name == "签收":
            assert seq[i - 1] == "派单"
        if i and seq[i - 1] == "退回":
            assert name == "派单"


# ---------------------------------------------------------------- building and reading


def ctx(origin: str = "12345", **kw: str) -> TicketContext:
    values = {"ticket_id": "T-20240501-0001", "origin": origin, "category": "600603",
              "callback": "13800138000", "division": "440106", "urgency": "urgent",
              "summary": "天河路口路灯不亮，晚上很黑"}
    values.update(kw)
    return TicketContext(**values)


def test_build_a_gongdan_from_a_ticket_context() -> None:
    doc = build_order(ctx(), order_id="GD-440106-0001", created_at=T0,
                      receiving=Unit(HOTLINE_UNIT, "12345热线"), address="天河路100号",
                      lon=113.36, lat=23.12, crs="GCJ-02")
    assert validate_order(doc) == []
    assert doc["order"] == {"id": "GD-440106-0001", "kind": "工单", "origin": "12345",
                            "created_at": "2024-05-01T20:15:00.000+08:00",
                            "links": {"ticket_id": "T-20240501-0001"}}
    assert doc["codes"]["category"] == {"code": "600603", "name": "路灯故障", "police_class": "6"}
    assert doc["content"]["matter"] == "天河路口路灯不亮，晚上很黑"
    assert doc["content"]["urgency"] == "urgent"
    assert doc["handling"]["status"] == [{"status": "受理", "at": "2024-05-01T20:15:00.000+08:00",
                                          "unit": {"uscc": HOTLINE_UNIT, "name": "12345热线"}}]
    view = Order(doc)
    assert (view.id, view.kind, view.origin, view.ticket_id) == (
        "GD-440106-0001", "工单", "12345", "T-20240501-0001")
    assert view.division_path == "广东省/广州市/天河区"
    assert view.category_code == "600603"
    assert view.police_class == ("6", "social linkage")
    assert view.status == "受理"
    assert view.caller_display == view.callback == "13800138000"
    assert view.linked_orders == ()
    assert view.urgency == "urgent"
    assert view.deadline("complete_by") is None


def test_build_a_private_jingdan_with_everything() -> None:
    c = ctx("110", category="600303", callback="+8613900139000")
    deadlines = {"sign_off_by": T0 + timedelta(minutes=30),
                 "complete_by": T0 + timedelta(days=3)}
    history = [Step("受理", T0, POLICE_UNIT), Step("派单", T0 + timedelta(minutes=5), POLICE_UNIT)]
    doc = build_order(c, order_id="JD-1", created_at=T0, receiving=Unit(POLICE_UNIT, "某派出所"),
                      handling=Unit(STREET_UNIT), address="某小区3栋", private=True,
                      caller_name="李先生", matter="楼上邻居长期噪音",
                      safety_notes=["对方情绪激动"], linked_orders=["GD-440106-0001"],
                      timeline=timeline_summary([
                          (T0, "call.started"),
                          (T0 + timedelta(minutes=4), "transfer.completed")]),
                      deadlines=deadlines, status=history)
    view = Order(doc)
    assert view.kind == "警单"
    assert view.callback == "+8613900139000"  # kept for the callback
    assert view.caller_display == "+86139****9000"  # masked for display
    assert view.status == "派单"
    assert view.linked_orders == ("GD-440106-0001",)
    assert view.deadline("complete_by") == T0 + timedelta(days=3)
    assert [s.status for s in view.history] == ["受理", "派单"]
    assert doc["codes"]["units"]["handling"] == {"uscc": STREET_UNIT}
    assert doc["handling"]["status"][0]["unit"] == {"uscc": POLICE_UNIT, "name": "某派出所"}


def test_a_concept_category_has_no_police_class() -> None:
    doc = build_order(ctx(category="490100"), order_id="GD-2", created_at=T0,
                      receiving=Unit(HOTLINE_UNIT), address="x")
    assert doc["codes"]["category"] == {"code": "490100", "name": "概念:身体状态"}


def test_build_refuses_what_does_not_validate() -> None:
    with pytest.raises(OrderError) as info:
        build_order(ctx("119"), order_id="X-1", created_at=T0, receiving=Unit(HOTLINE_UNIT),
                    address="x")
    assert info.value.problems[0].path == "$.order.origin"
    with pytest.raises(OrderError) as info:
        build_order(ctx(category="", division="999999"), order_id="X-1", created_at=T0,
                    receiving=Unit(BAD_USCC), address="")
    assert paths(list(info.value.problems)) == [
        "$.codes.category.code", "$.codes.division", "$.codes.units.receiving.uscc",
        "$.content.location.address", "$.handling.status[0].unit.uscc"]
    with pytest.raises(ValueError, match="naive"):
        build_order(ctx(), order_id="X-1", created_at=datetime(2024, 5, 1),
                    receiving=Unit(HOTLINE_UNIT), address="x")


def test_order_view_refuses_an_invalid_document() -> None:
    doc = minimal_gongdan()
    del doc["order"]["id"]
    with pytest.raises(OrderError, match=r"\$\.order\.id: 'id' is required"):
        Order(doc)


@pytest.mark.parametrize(("number", "shown"), [
    ("13800138000", "138****8000"),
    ("+8613800138000", "+86138****8000"),
    ("02087654321", "020****4321"),
    ("87654321", "876*4321"),
    ("+442079460000", "+442*****0000"),
    ("110", "*10"),
    ("12", "12"),
])
def test_mask_number(number: str, shown: str) -> None:
    assert mask_number(number) == shown


def test_timeline_summary_is_short() -> None:
    events = [(T0.timestamp() + i, f"leg.step{i}") for i in range(30)]
    summary = timeline_summary(events, limit=5)
    assert [s["kind"] for s in summary] == ["leg.step0", "leg.step1", "leg.step2", "leg.step3",
                                            "leg.step29"]
    assert summary[0]["at"] == "2024-05-01T12:15:00.000+00:00"
    doc = minimal_gongdan()
    doc["content"]["timeline"] = timeline_summary(events)
    assert validate_order(doc) == []


def test_times() -> None:
    assert lo.parse_time("2024-05-01T12:15:00Z") == datetime(2024, 5, 1, 12, 15, tzinfo=UTC)
    assert lo.parse_time("2024-05-01t12:15:00.123456789+08:00").microsecond == 123456
    for bad in ("2024-05-01", "20240501T121500Z", "2024-05-01T12:15Z", 1714565700):
        with pytest.raises(ValueError):
            lo.parse_time(bad)  # type: ignore[arg-type]


def test_documents_are_not_mutated() -> None:
    doc = full_jingdan()
    before = copy.deepcopy(doc)
    validate_order(doc)
    Order(doc)
    assert doc == before
