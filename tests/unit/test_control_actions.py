"""AMI action builders: exact shapes, and nothing unsafe reaches the wire."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from panoramisk.actions import Action as PanoramiskAction

from telephony.control import actions
from telephony.control.errors import BadInput, ControlError, Unprocessable
from telephony.control.targets import TargetPolicy
from telephony.control.testing import AGENT, CALLER, ticket
from telephony.ticket_context import TicketContext

POLICY = TargetPolicy("12345", utility_desks={"96345": "water utility"})
T110 = POLICY.resolve("110")
T120 = POLICY.resolve("120")

INJECTIONS = [
    "leak\r\nAction: Originate\r\nChannel: PJSIP/evil\r\nApplication: System\r\n\r\n",
    "a,b,c|d|e;f\"quoted\" 'single' ${SHELL(rm -rf /)}",
    "line1\nline2\rline3\x00\x1b[31m",
    "水管爆裂，" * 2000,  # 10 kB of Chinese text
    "x" * 10240,
]
WIRE_LINE = re.compile(r"^[A-Za-z]+: [^\r\n]*$")


def test_blind_transfer_action_shape() -> None:
    assert actions.blind_transfer(AGENT, T110) == {
        "Action": "BlindTransfer", "Channel": AGENT, "Context": "hotline-xfer", "Exten": "110"}


def test_atxfer_and_cancel_shapes() -> None:
    assert actions.atxfer(AGENT, T110) == {
        "Action": "Atxfer", "Channel": AGENT, "Context": "hotline-out", "Exten": "110"}
    assert actions.cancel_atxfer(AGENT) == {"Action": "CancelAtxfer", "Channel": AGENT}


def test_dual_redirect_into_conference() -> None:
    action = actions.redirect_pair_to_conference(CALLER, AGENT, "hlabc123")
    assert action == {
        "Action": "Redirect", "Channel": CALLER, "ExtraChannel": AGENT,
        "Context": "hotline-conf", "Exten": "hlabc123", "Priority": "1",
        "ExtraContext": "hotline-conf", "ExtraExten": "hlabc123", "ExtraPriority": "1"}


def test_originate_into_conference_carries_ticket_vars() -> None:
    action = actions.originate_into_conference(T120, "hlabc123", ticket(),
                                               {"HOTLINE_OP": "abc123"})
    assert action["Channel"] == "Local/120@hotline-out/n"
    assert (action["Context"], action["Exten"], action["Async"]) == (
        "hotline-conf", "hlabc123", "true")
    assert "__TICKET_ID=T-0001" in action["Variable"]
    assert "__TICKET_SUMMARY=water%20leak" in action["Variable"]
    assert "HOTLINE_CONF_ROLE=party" in action["Variable"]
    assert "HOTLINE_OP=abc123" in action["Variable"]


@pytest.mark.parametrize(("mode", "options"), [
    ("listen", "qE"), ("whisper", "qwE"), ("barge", "qBE")])
def test_chanspy_originate(mode: str, options: str) -> None:
    action = actions.chanspy("sup12345-1", AGENT, mode)
    assert action["Channel"] == "PJSIP/sup12345-1"
    assert action["Application"] == "ChanSpy"
    assert action["Data"] == f"{AGENT},{options}"
    assert action["Async"] == "true"


def test_hangup_setvar_and_feature_digits() -> None:
    assert actions.hangup(AGENT) == {"Action": "Hangup", "Channel": AGENT, "Cause": "16"}
    assert actions.setvar(CALLER, "HOTLINE_OP", "abc") == {
        "Action": "Setvar", "Channel": CALLER, "Variable": "HOTLINE_OP", "Value": "abc"}
    assert actions.feature_digits(AGENT, "#4") == [
        {"Action": "PlayDTMF", "Channel": AGENT, "Digit": "#", "Receive": "true"},
        {"Action": "PlayDTMF", "Channel": AGENT, "Digit": "4", "Receive": "true"}]
    with pytest.raises(BadInput):
        actions.feature_digits(AGENT, "#4\r\n")


def test_ticket_setvars_one_action_per_var() -> None:
    built = actions.ticket_setvars(CALLER, ticket())
    assert {a["Variable"] for a in built} == {
        "__TICKET_ID", "__TICKET_ORIGIN", "__TICKET_CATEGORY", "__TICKET_CALLBACK",
        "__TICKET_DIVISION", "__TICKET_URGENCY", "__TICKET_SUMMARY"}


@pytest.mark.parametrize("summary", INJECTIONS)
def test_injected_summary_stays_one_encoded_value(summary: str) -> None:
    context = ticket(summary)
    action = actions.originate_into_conference(T120, "hlabc123", context)
    var = next(v for v in action["Variable"] if v.startswith("__TICKET_SUMMARY="))
    value = var.split("=", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9%._~-]*", value), value[:80]
    assert len(value) <= actions.MAX_VALUE_LEN
    decoded = urllib.parse.unquote(value)
    assert "\r" not in decoded and "\n" not in decoded
    # What survives is the (cut) text itself, not a second action.
    assert decoded.startswith(re.sub(r"[\x00-\x1f\x7f]", " ", summary).strip()[:20])

    wire = actions.to_wire(action)
    lines = wire.split("\r\n")
    assert lines[-2:] == ["", ""]
    body = lines[:-2]
    assert all(WIRE_LINE.match(line) for line in body), body
    assert sum(line.startswith("Action:") for line in body) == 1
    assert not any(line.startswith(("Channel: PJSIP/evil", "Application:")) for line in body)


@pytest.mark.parametrize("summary", INJECTIONS)
async def test_panoramisk_serialisation_has_one_action(summary: str) -> None:
    """The real library's wire form, not only ours."""
    action = actions.originate_into_conference(T120, "hlabc123", ticket(summary))
    wire = str(PanoramiskAction(dict(action)))
    lines = [line for line in wire.split("\r\n") if line]
    assert sum(line.lower().startswith("action:") for line in lines) == 1
    assert all(WIRE_LINE.match(line) for line in lines)
    assert not any(line.startswith("Application:") for line in lines)


@pytest.mark.parametrize("channel", [
    "PJSIP/agent\r\nAction: Hangup",
    "PJSIP/agent,qB",
    "PJSIP/agent|x",
    "PJSIP/agent x",
    "SIP/agent-1",
    "DAHDI/1-1",
    "PJSIP/" + "a" * 81,
    "Local/110@hotline-out\"",
    "",
    None,
])
def test_bad_channels_rejected(channel: object) -> None:
    with pytest.raises(Unprocessable) as err:
        actions.hangup(channel)  # type: ignore[arg-type]
    assert err.value.code == "invalid_channel"
    with pytest.raises(Unprocessable):
        actions.chanspy("sup12345-1", channel, "listen")  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["911", "110\r\n", "110,1", "12345", "", None, "1" * 70])
def test_targets_only_from_allow_list(target: object) -> None:
    with pytest.raises(Unprocessable) as err:
        POLICY.resolve(target)
    assert err.value.code in ("invalid_target", "target_is_self")
    assert err.value.status == 422


def test_utility_desk_and_other_platform() -> None:
    assert POLICY.resolve("96345").kind == "utility"
    assert POLICY.other_platform == "110"
    assert TargetPolicy("110").other_platform == "12345"
    assert TargetPolicy("110").resolve("12345").kind == "platform"


@pytest.mark.parametrize(("name", "value"), [
    ("OK", "a,b"), ("OK", "a\nb"), ("BAD NAME", "x"), ("A=B", "x"), ("OK", "x" * 121)])
def test_variables_strict(name: str, value: str) -> None:
    with pytest.raises(ControlError):
        actions.variables({name: value})


@pytest.mark.parametrize("name", ["hl,1", "hl\r\n", "-x", "a" * 65, "hl 1"])
def test_conference_names_strict(name: str) -> None:
    with pytest.raises(Unprocessable):
        actions.redirect_pair_to_conference(CALLER, AGENT, name)


def test_ticket_context_rejects_injection_in_structured_fields() -> None:
    with pytest.raises(ValueError):
        TicketContext(ticket_id="T-1\r\nAction: Originate", origin="12345")
