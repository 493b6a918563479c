"""`hotline sipp`: the argument parsing, without running sipp."""

from __future__ import annotations

import argparse

import pytest

from telephony.lab.sipp import parse_headers, parse_presses, register


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(required=True))
    return parser.parse_args(argv)


def test_cli_press_and_header_parsing() -> None:
    assert parse_presses(["1500:0", "200:*1"]) == [(200, "*1"), (1500, "0")]
    assert parse_headers(["X-Ticket-Id=T-1"]) == {"X-Ticket-Id": "T-1"}
    for bad in (["1500"], ["x:1"], ["10:9z"]):
        with pytest.raises(ValueError):
            parse_presses(bad)
    with pytest.raises(ValueError):
        parse_headers(["X-Ticket-Id"])


def test_each_sipp_command_has_its_own_handler_and_defaults() -> None:
    call = _parse("sipp", "call", "--number", "12345", "--port", "15060", "--until-bye")
    agent = _parse("sipp", "agent", "--port", "16101", "--key", "2000:*1", "--reject", "486")
    desk = _parse("sipp", "desk", "--number", "120")
    assert len({call.func, agent.func, desk.func}) == 3
    assert call.until_bye and call.talk == 3.0 and call.dtmf_mode == "rfc4733"
    assert agent.key == ["2000:*1"] and agent.reject == 486 and agent.key_mode == "info"
    assert desk.number == "120" and desk.port is None and desk.lifetime == 900.0
    with pytest.raises(SystemExit):
        _parse("sipp", "desk", "--number", "999")
