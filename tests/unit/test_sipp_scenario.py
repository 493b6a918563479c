"""Scenario rendering for the SIPp peers: the UAS behaviour, the agent and citizen XML."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from telephony.lab.sipp_scenario import (
    UasBehaviour,
    UasOptions,
    render_agent,
    render_citizen,
)
from telephony.lab.sipp_xml import check_presses


def _agent_xml(tmp_path: Path, **options: Any) -> str:
    path = render_agent(tmp_path, user="agent7", behaviour=UasBehaviour(**options))
    xml = path.read_text(encoding="latin-1")
    ET.fromstring(xml)  # well-formed, or sipp would refuse it
    return xml


def _scenario_steps(xml: str) -> list[str]:
    """Top-level scenario elements up to the shared in-dialog handler, as tag[attr=value]."""
    steps = []
    for element in ET.fromstring(xml):
        if element.tag == "label" and element.get("id") == "_unexp.main":
            break
        attrs = ",".join(f"{k}={v}" for k, v in sorted(element.attrib.items()))
        steps.append(f"{element.tag}[{attrs}]")
    return steps


def test_keyword_options_name_every_behaviour_field_with_its_type() -> None:
    fields = [f.name for f in dataclasses.fields(UasBehaviour)]
    options = get_type_hints(UasOptions)
    assert list(options) == fields
    assert options == get_type_hints(UasBehaviour)


def test_sipp_args_carry_lifetime_and_call_limit() -> None:
    assert UasBehaviour().sipp_args() == ["-aa", "-timeout", "900s"]
    assert UasBehaviour(lifetime_s=0.2, max_calls=3).sipp_args() == [
        "-aa",
        "-timeout",
        "1s",
        "-m",
        "3",
    ]
    assert UasBehaviour(lifetime_s=None).sipp_args() == ["-aa"]


def test_default_behaviour_answers_after_ring_delay_and_waits_for_bye(tmp_path: Path) -> None:
    xml = _agent_xml(tmp_path, ring_delay_ms=750)
    steps = _scenario_steps(xml)
    assert steps[steps.index("pause[milliseconds=750]") - 1] == "send[]"  # 180 before the pause
    assert "SIP/2.0 180 Ringing" in xml and "Contact: <sip:agent7@[local_ip]" in xml
    assert steps[-3:] == ["recv[request=BYE]", "send[]", "nop[next=done]"]
    assert "<ereg" not in xml  # nothing sent in the dialog, so nothing captured
    assert "@@" not in xml


def test_reject_code_refuses_every_call(tmp_path: Path) -> None:
    xml = _agent_xml(tmp_path, reject_code=486)
    before_handler = xml.split("_unexp.main")[0]
    assert "SIP/2.0 486 Busy Here" in before_handler
    assert "180 Ringing" not in before_handler and "m=audio" not in before_handler
    assert '<recv request="ACK" next="done"/>' in xml
    assert "SIP/2.0 499 Rejected" in _agent_xml(tmp_path, reject_code=499)
    for bad in (200, 700):
        with pytest.raises(ValueError, match="4xx-6xx"):
            _agent_xml(tmp_path, reject_code=bad)


def test_ring_forever_answers_the_cancel_with_the_invites_cseq(tmp_path: Path) -> None:
    xml = _agent_xml(tmp_path, ring_forever=True)
    assert 'assign_to="invite_cseq"' in xml
    assert '<recv request="CANCEL"/>' in xml
    assert "SIP/2.0 487 Request Terminated" in xml and "CSeq: [$invite_cseq] INVITE" in xml
    assert "SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n      [last_To:]\n" in xml


def test_info_keys_and_own_hangup_are_in_dialog_requests(tmp_path: Path) -> None:
    xml = _agent_xml(tmp_path, keys=[(2000, "*1")], hangup_after_ms=5000)
    assert re.findall(r"Signal=(.)", xml) == ["*", "1"]
    assert re.findall(r"CSeq: (\d+ \w+)", xml)[-3:] == ["101 INFO", "102 INFO", "103 BYE"]
    for variable in ("remote_from", "local_to", "remote_contact"):
        assert f'assign_to="{variable}"' in xml
    assert "INFO [$remote_contact] SIP/2.0" in xml and "[routes]" not in xml
    # 2000 ms, two digits with 100 ms gaps each, then the rest of 5000 ms before the BYE.
    pauses = [int(ms) for ms in re.findall(r'<pause milliseconds="(\d+)"/>', xml)]
    assert pauses == [2000, 100, 100, 2800]


def test_rfc4733_keys_write_one_pcap_per_digit_without_captures(tmp_path: Path) -> None:
    xml = _agent_xml(tmp_path, keys=[(500, "12")], mode="rfc4733")
    assert sorted(p.name for p in tmp_path.glob("press*.pcap")) == ["press01.pcap", "press02.pcap"]
    assert xml.count("play_pcap_audio=") == 2 and "INFO [$remote_contact]" not in xml
    assert "<ereg" not in xml


def test_bad_user_and_bad_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad user"):
        render_agent(tmp_path, user="a b", behaviour=UasBehaviour())
    with pytest.raises(ValueError, match="bad key press"):
        _agent_xml(tmp_path, keys=[(100, "x")])
    assert check_presses([(300, "1"), (100, "#")]) == [(100, "#"), (300, "1")]


def _citizen(tmp_path: Path, **overrides: object) -> Path:
    options: dict = {
        "number": "12345",
        "caller": "13800000001",
        "headers": {},
        "dtmf": (),
        "dtmf_mode": "info",
        "talk_s": 1,
        "play_audio": False,
    } | overrides
    return render_citizen(tmp_path, **options)


def test_citizen_carries_headers_and_hangs_up_after_talk_time(tmp_path: Path) -> None:
    xml = _citizen(tmp_path, headers={"X-Ticket-Id": "T-1"}, talk_s=2.5).read_text()
    assert "      X-Ticket-Id: T-1" in xml
    assert "BYE [next_url] SIP/2.0" in xml and "[routes]" in xml
    assert '<pause milliseconds="2500"/>' in xml
    until_bye = _citizen(tmp_path, talk_s=None).read_text()
    assert "BYE [next_url]" not in until_bye and '<recv request="BYE"/>' in until_bye


def test_unsafe_header_values_are_refused(tmp_path: Path) -> None:
    for headers in (
        {"X-Ticket-Id": "[call_id]"},
        {"X-Ticket-Id": "a\r\nBYE"},
        {"Subject": "x"},
        {"X-Note": "火警"},
    ):
        with pytest.raises(ValueError):
            _citizen(tmp_path, headers=headers)
