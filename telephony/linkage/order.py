"""工单 / 警单 documents: the v1 JSON Schema, validation, building from a call, status rules.

One schema (`schema/order-v1.schema.json`, draft 2020-12) serves both directions: a
工单 from 12345 and a 警单 from 110. `validate_order` runs it with a format checker
whose `gb2260`, `uscc` and `date-time` formats call `codes.py`, then checks what a
schema cannot say: the status history obeys the status machine (`next_status`),
times do not go backwards, and deadlines come in order. Pure: no I/O after import.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from telephony.linkage import codes
from telephony.ticket_context import TicketContext

SCHEMA_PATH = Path(__file__).parent / "schema" / "order-v1.schema.json"
SCHEMA_VERSION = "1"

KIND_BY_ORIGIN = {"12345": "工单", "110": "警单"}

ACCEPTED = "受理"
DISPATCHED = "派单"
SIGNED = "签收"
IN_PROGRESS = "处理中"
FED_BACK = "已反馈"
CLOSED = "办结"
RETURNED = "退回"
STATUSES = (ACCEPTED, DISPATCHED, SIGNED, IN_PROGRESS, FED_BACK, CLOSED, RETURNED)

# status -> the statuses that may follow it. 受理 opens every history; 办结 closes it.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    ACCEPTED: (DISPATCHED,),
    DISPATCHED: (SIGNED, RETURNED),
    SIGNED: (IN_PROGRESS, FED_BACK, RETURNED),
    IN_PROGRESS: (IN_PROGRESS, FED_BACK, RETURNED),  # repeated 处理中 = progress notes
    FED_BACK: (CLOSED, IN_PROGRESS),  # 督办: feedback not accepted, work goes on
    RETURNED: (DISPATCHED,),  # re-dispatch to another unit
    CLOSED: (),
}

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


# ---------------------------------------------------------------- formats and the validator


def parse_time(value: str) -> datetime:
    """An RFC 3339 date-time with a zone ('T' separator) -> aware datetime; ValueError else."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(f"{value!r:.40} is not an RFC 3339 date-time with a time zone")
    text = value.upper()
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds: cut, don't round
        text = text.replace(frac.group(0), "." + frac.group(1)[:6], 1)
    return datetime.fromisoformat(text)


def format_time(when: datetime | float) -> str:
    """Aware datetime or epoch seconds -> RFC 3339 text, milliseconds."""
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(when, UTC)
    if when.tzinfo is None:
        raise ValueError("naive datetime: give a time zone")
    return when.isoformat(timespec="milliseconds")


def _raise_reason(check: codes.CodeCheck) -> bool:
    if not check.valid:
        raise ValueError(check.reason)
    return True


FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("gb2260", raises=ValueError)
def _is_gb2260(value: object) -> bool:
    return not isinstance(value, str) or _raise_reason(codes.check_division(value))


@FORMAT_CHECKER.checks("uscc", raises=ValueError)
def _is_uscc(value: object) -> bool:
    return not isinstance(value, str) or _raise_reason(codes.check_uscc(value))


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        parse_time(value)
    return True


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return doc


@functools.lru_cache(maxsize=1)
def validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema(), format_checker=FORMAT_CHECKER)


# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    path: str  # JSON path: $.codes.units.receiving.uscc, $.handling.status[2].reason
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class OrderError(ValueError):
    """An order that does not validate; `problems` says where and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = tuple(problems)


def _path(base: str, *more: str | int) -> str:
    out = base
    for part in more:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += "." + part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _problem(error: ValidationError) -> list[Problem]:
    where = error.json_path
    if error.validator == "required":
        missing = [p for p in error.validator_value
                   if isinstance(error.instance, dict) and p not in error.instance
                   and repr(p) in error.message]
        return [Problem(_path(where, p), f"'{p}' is required") for p in missing[:1]] or [
            Problem(where, error.message)]
    if error.validator == "dependentRequired":
        return [Problem(where, error.message)]
    if error.validator == "additionalProperties":
        return [Problem(where, error.message)]
    if error.validator == "format" and error.cause is not None:
        return [Problem(where, f"not a valid {error.validator_value}: {error.cause}")]
    inst = error.instance
    if error.validator == "oneOf" and isinstance(inst, dict) and "police_class" in inst:
        return [Problem(_path(where, "police_class"),
                        f"police class {inst.get('police_class')!r} does not match category "
                        f"code {inst.get('code')!r} (the class is its first digit)")]
    if error.validator == "const":
        return [Problem(where, f"must be {error.validator_value!r}, got {error.instance!r}")]
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return [Problem(where, f"{error.instance!r} is not one of: {allowed}")]
    return [Problem(where, error.message)]


def schema_problems(doc: Any) -> list[Problem]:
    """What the JSON Schema (with its formats) says about `doc`, one Problem per error."""
    out: list[Problem] = []
    for error in sorted(validator().iter_errors(doc), key=lambda e: (e.json_path, e.message)):
        out.extend(_problem(error))
    return out


def validate_order(doc: Any) -> list[Problem]:
    """Every problem with `doc`; [] when it is a valid v1 工单 or 警单.

    Schema first; the history and deadline rules run only on a schema-valid document,
    so one bad field does not also produce a cascade of follow-on problems.
    """
    problems = schema_problems(doc)
    if problems:
        return problems
    return _history_problems(doc) + _deadline_problems(doc)


# ---------------------------------------------------------------- the status machine


@dataclass(frozen=True)
class Step:
    status: str
    at: datetime | None = None
    unit: str = ""  # the acting unit's unified social credit code
    reason: str = ""
    note: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Step:
        at = raw.get("at")
        unit = raw.get("unit") or {}
        return cls(status=str(raw.get("status", "")),
                   at=parse_time(at) if isinstance(at, str) else None,
                   unit=str(unit.get("uscc", "")) if isinstance(unit, Mapping) else str(unit),
                   reason=str(raw.get("reason", "")), note=str(raw.get("note", "")))

    def to_json(self, unit_name: str = "") -> dict[str, Any]:
        if self.at is None:
            raise ValueError("a step needs its time")
        unit: dict[str, Any] = {"uscc": self.unit}
        if unit_name:
            unit["name"] = unit_name
        out: dict[str, Any] = {"status": self.status, "at": format_time(self.at), "unit": unit}
        if self.reason:
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        return out


StepLike = Step | Mapping[str, Any] | str


def _as_step(step: StepLike) -> Step:
    if isinstance(step, Step):
        return step
    if isinstance(step, str):
        return Step(step)
    return Step.from_json(step)


def next_status(history: Sequence[StepLike], new: StepLike) -> str | None:
    """None when `new` may follow `history`; else why not, in words.

    Steps are `Step`s, JSON step objects, or bare status names (then no reason and no
    time, so a bare 退回 is always refused).
    """
    step = _as_step(new)
    if step.status not in TRANSITIONS:
        return f"unknown status {step.status!r}; one of {', '.join(STATUSES)}"
    if step.status == RETURNED and not step.reason.strip():
        return f"{RETURNED} needs a reason"
    if not history:
        return None if step.status == ACCEPTED else (
            f"the first status must be {ACCEPTED}, not {step.status}")
    last = _as_step(history[-1])
    allowed = TRANSITIONS.get(last.status, ())
    if step.status not in allowed:
        if last.status == CLOSED:
            return f"{CLOSED} is final: {step.status} may not follow it"
        if step.status == CLOSED:
            return f"{CLOSED} only after {FED_BACK} (last status is {last.status})"
        if step.status == ACCEPTED:
            return f"{ACCEPTED} opens a history; it may not follow {last.status}"
        return f"{step.status} may not follow {last.status} (allowed: {', '.join(allowed)})"
    if step.at is not None and last.at is not None and step.at < last.at:
        return (f"{step.status} at {format_time(step.at)} is before the previous step "
                f"({last.status} at {format_time(last.at)})")
    return None


def current_status(history: Sequence[StepLike]) -> str | None:
    return _as_step(history[-1]).status if history else None


def _history_problems(doc: Mapping[str, Any]) -> list[Problem]:
    steps = doc["handling"]["status"]
    out = []
    for i, raw in enumerate(steps):
        error = next_status(steps[:i], raw)
        if error is not None:
            out.append(Problem(_path("$.handling.status", i, "status"), error))
    return out


_DEADLINE_ORDER = ("sign_off_by", "feedback_by", "complete_by")


def _deadline_problems(doc: Mapping[str, Any]) -> list[Problem]:
    deadlines = doc["handling"].get("deadlines") or {}
    created = parse_time(doc["order"]["created_at"])
    out = []
    previous: tuple[str, datetime] | None = None
    for name in _DEADLINE_ORDER:
        if name not in deadlines:
            continue
        when = parse_time(deadlines[name])
        if when < created:
            out.append(Problem(_path("$.handling.deadlines", name),
                               f"{name} is before the order was created"))
        if previous is not None and when < previous[1]:
            out.append(Problem(_path("$.handling.deadlines", name),
                               f"{name} is before {previous[0]}"))
        previous = (name, when)
    return out


# ---------------------------------------------------------------- building and reading


@dataclass(frozen=True)
class Unit:
    uscc: str
    name: str = ""

    def to_json(self) -> dict[str, str]:
        return {"uscc": self.uscc, **({"name": self.name} if self.name else {})}


def mask_number(number: str) -> str:
    """A number for display when the caller asked for privacy: 13800138000 -> 138****8000.

    Keeps a leading + and the country code 86, the first 3 and last 4 digits of the
    rest (the last 2 of a number shorter than 8 digits).
    """
    prefix = ""
    rest = number
    for head in ("+86", "+"):
        if rest.startswith(head):
            prefix, rest = head, rest[len(head):]
            break
    if len(rest) >= 8:
        return prefix + rest[:3] + "*" * (len(rest) - 7) + rest[-4:]
    return prefix + "*" * max(len(rest) - 2, 0) + rest[-2:]


def timeline_summary(events: Iterable[tuple[datetime | float, str]], limit: int = 20,
                     ) -> list[dict[str, str]]:
    """(time, kind) pairs -> the order's short timeline: the first limit-1 and the last."""
    items = [{"at": format_time(at), "kind": kind} for at, kind in events]
    if len(items) > limit:
        items = [*items[: limit - 1], items[-1]]
    return items


def build_order(ctx: TicketContext, *, order_id: str, created_at: datetime,
                receiving: Unit, address: str, private: bool = False,
                caller_name: str = "", matter: str | None = None,
                handling: Unit | None = None, lon: float | None = None,
                lat: float | None = None, crs: str | None = None,
                safety_notes: Sequence[str] = (), timeline: Sequence[Mapping[str, str]] = (),
                linked_orders: Sequence[str] = (), deadlines: Mapping[str, datetime] | None = None,
                status: Sequence[Step] | None = None) -> dict[str, Any]:
    """A v1 order document from a call's ticket context plus what the call-taker adds.

    The origin platform (12345 or 110) decides the kind (工单 or 警单). The history
    starts with 受理 by the receiving unit at `created_at` unless `status` is given.
    The category's name and police class come from the routing catalogue when it
    knows the code. Raises OrderError when the result does not validate.
    """
    kind = KIND_BY_ORIGIN.get(ctx.origin)
    if kind is None:
        raise OrderError([Problem("$.order.origin",
                                  f"platform {ctx.origin} sends no 工单 or 警单 (12345 or 110)")])
    category: dict[str, Any] = {"code": ctx.category}
    name = codes.category_name(ctx.category)
    if name:
        category["name"] = name
    police = codes.police_class(ctx.category)
    if police is not None:
        category["police_class"] = police.digit
    units: dict[str, Any] = {"receiving": receiving.to_json()}
    if handling is not None:
        units["handling"] = handling.to_json()
    location: dict[str, Any] = {"address": address}
    if lon is not None:
        location["lon"] = lon
    if lat is not None:
        location["lat"] = lat
    if crs is not None:
        location["crs"] = crs
    caller: dict[str, Any] = {"callback": ctx.callback, "private": private}
    if caller_name:
        caller["name"] = caller_name
    content: dict[str, Any] = {"caller": caller, "location": location,
                               "matter": matter if matter is not None else ctx.summary,
                               "urgency": ctx.urgency}
    if safety_notes:
        content["safety_notes"] = list(safety_notes)
    if timeline:
        content["timeline"] = [dict(t) for t in timeline]
    steps = status if status is not None else [Step(ACCEPTED, created_at, receiving.uscc)]
    names = {u.uscc: u.name for u in (receiving, handling) if u is not None}
    handling_doc: dict[str, Any] = {
        "status": [s.to_json(names.get(s.unit, "")) for s in steps]}
    if deadlines:
        handling_doc["deadlines"] = {k: format_time(v) for k, v in deadlines.items()}
    links: dict[str, Any] = {"ticket_id": ctx.ticket_id}
    if linked_orders:
        links["orders"] = list(linked_orders)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "order": {"id": order_id, "kind": kind, "origin": ctx.origin,
                  "created_at": format_time(created_at), "links": links},
        "codes": {"division": ctx.division, "units": units, "category": category},
        "content": content,
        "handling": handling_doc,
    }
    problems = validate_order(doc)
    if problems:
        raise OrderError(problems)
    return doc


class Order:
    """A typed, read-only view of a valid order document."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        problems = validate_order(doc)
        if problems:
            raise OrderError(problems)
        self.doc = doc

    @property
    def id(self) -> str:
        return str(self.doc["order"]["id"])

    @property
    def kind(self) -> str:
        return str(self.doc["order"]["kind"])

    @property
    def origin(self) -> str:
        return str(self.doc["order"]["origin"])

    @property
    def ticket_id(self) -> str:
        return str(self.doc["order"]["links"]["ticket_id"])

    @property
    def linked_orders(self) -> tuple[str, ...]:
        return tuple(self.doc["order"]["links"].get("orders", ()))

    @property
    def division(self) -> str:
        return str(self.doc["codes"]["division"])

    @property
    def division_path(self) -> str:
        return codes.division_path(self.division) or ""

    @property
    def category_code(self) -> str:
        return str(self.doc["codes"]["category"]["code"])

    @property
    def police_class(self) -> codes.PoliceClass | None:
        digit = self.doc["codes"]["category"].get("police_class")
        return codes.PoliceClass(digit, codes.POLICE_CLASSES[digit]) if digit else None

    @property
    def urgency(self) -> str:
        return str(self.doc["content"]["urgency"])

    @property
    def callback(self) -> str:
        """The real number, always: the callback needs it even when the caller is private."""
        return str(self.doc["content"]["caller"]["callback"])

    @property
    def caller_display(self) -> str:
        caller = self.doc["content"]["caller"]
        return mask_number(caller["callback"]) if caller["private"] else str(caller["callback"])

    @property
    def history(self) -> tuple[Step, ...]:
        return tuple(Step.from_json(s) for s in self.doc["handling"]["status"])

    @property
    def status(self) -> str:
        return self.history[-1].status

    def deadline(self, name: str) -> datetime | None:
        raw = (self.doc["handling"].get("deadlines") or {}).get(name)
        return parse_time(raw) if raw else None
