"""The AGI wire rules: quoting, result lines, headers, names."""

from __future__ import annotations

import pytest

from ivr.agi_protocol import (
    AgiCommandError,
    AgiEnv,
    AgiHangup,
    AgiProtocolError,
    build_command,
    check_var_name,
    parse_header_block,
    parse_header_line,
    parse_result,
    quote_arg,
    route_of,
)
from ivr.channel import AgiChannel
from ivr.testing import ScriptedPeer, ScriptedTransport, agi_headers, env_of, parse_command


def test_quote_escapes_quotes_backslashes_and_newlines():
    assert quote_arg('a "b" \\c') == '"a \\"b\\" \\\\c"'
    quoted = quote_arg("line1\r\nSET VARIABLE X 1")
    assert "\n" not in quoted and "\r" not in quoted
    assert build_command("VERBOSE", "x\ny", 1) == 'VERBOSE "x y" "1"\n'


def test_command_round_trips_through_the_peer_parser():
    tricky = 'say "hi", \\ there; | ok'
    verb, args = parse_command(build_command("SET VARIABLE", "X", tricky))
    assert verb == "SET VARIABLE"
    assert args == ["X", tricky]


def test_bad_verb_rejected():
    with pytest.raises(ValueError):
        build_command("ANSWER\nHANGUP")


@pytest.mark.parametrize(
    ("line", "value", "data"),
    [
        ("200 result=0", "0", ""),
        ("200 result=49 endpos=1234", "49", ""),
        ("200 result=1 (some value)", "1", "some value"),
        ("200 result= (timeout)", "", "timeout"),
        ("200 result=123 (timeout)", "123", "timeout"),
    ],
)
def test_parse_result_values(line, value, data):
    result = parse_result(line)
    assert (result.value, result.data) == (value, data)


def test_parse_result_extra_fields():
    assert parse_result("200 result=0 endpos=16000").extra == {"endpos": "16000"}


@pytest.mark.parametrize(
    "line",
    [
        "HANGUP",
        "511 Command Not Permitted on a dead channel",
        "200 result=-1",
        "200 result=1 (hangup)",
    ],
)
def test_hangup_forms(line):
    with pytest.raises(AgiHangup):
        parse_result(line)


def test_minus_one_allowed_when_asked():
    assert parse_result("200 result=-1", hangup_on_minus_one=False).value == "-1"


@pytest.mark.parametrize("line", ["510 Invalid or unknown command", "520 End of proper usage."])
def test_command_errors(line):
    with pytest.raises(AgiCommandError):
        parse_result(line)


@pytest.mark.parametrize("line", ["", "hello", "200", "200 nothing", "999 x", "20 result=1"])
def test_garbage_results(line):
    with pytest.raises(AgiProtocolError):
        parse_result(line)


def test_header_block_and_route():
    env = parse_header_block(b"agi_network_script: ingress-110?x=1\nagi_uniqueid: 1.2\n\n")
    assert env.uniqueid == "1.2"
    assert env.route == "ingress-110"


def test_route_from_request_when_script_missing():
    env = AgiEnv({"agi_request": "agi://127.0.0.1:14573/ingress-12345?a=b"})
    assert route_of(env) == "ingress-12345"
    assert route_of(AgiEnv({})) == ""


@pytest.mark.parametrize(
    "line", [b"no colon here\n", b"Agi_upper: x\n", b"other: x\n", b"x" * 5000 + b"\n"]
)
def test_malformed_header_lines(line):
    with pytest.raises(AgiProtocolError):
        parse_header_line(line)


def test_header_value_control_characters_are_neutralised():
    assert parse_header_line(b"agi_callerid: 1\x00\x1b2\r\n") == ("agi_callerid", "1  2")


def test_unterminated_header_block():
    with pytest.raises(AgiProtocolError):
        parse_header_block(b"agi_a: 1\nagi_b: 2")


@pytest.mark.parametrize("name", ["__TICKET_ID", "HOTLINE_DEST", "x1"])
def test_var_names_ok(name):
    assert check_var_name(name) == name


@pytest.mark.parametrize("name", ["A B", "X\nY", "___X", "1X", "", "QUEUE_WAITING_COUNT(q)"])
def test_var_names_rejected(name):
    with pytest.raises(ValueError):
        check_var_name(name)


def test_function_reads_allowed_only_for_get():
    assert check_var_name("QUEUE_WAITING_COUNT(q12345)", allow_function=True)
    with pytest.raises(ValueError):
        check_var_name("SHELL(rm -rf /)", allow_function=True)


async def test_channel_sanitises_values_and_digits():
    peer = ScriptedPeer(["5"], variables={"FOO": "bar baz"})
    ch = AgiChannel(env_of(agi_headers("r")), ScriptedTransport(peer))
    await ch.set_variable("NOTE", 'evil"\r\nHANGUP')
    assert peer.final_vars["NOTE"] == 'evil"  HANGUP'
    assert all("\n" not in c for c in peer.commands)
    assert await ch.get_variable("FOO") == "bar baz"
    assert await ch.get_variable("MISSING") is None
    assert await ch.stream_file("greeting_12345", "5") == "5"
    with pytest.raises(ValueError):
        await ch.stream_file("../../etc/passwd")
    assert await ch.exec_app("Playback", "a,b", "c") == 0
    assert parse_command(peer.commands[-1]) == ("EXEC", ["Playback", "a b,c"])
    with pytest.raises(ValueError):
        await ch.exec_app("System;rm")


async def test_channel_get_data_and_wait():
    peer = ScriptedPeer(["123", "timeout", "7"])
    ch = AgiChannel(env_of(agi_headers("r")), ScriptedTransport(peer))
    assert await ch.get_data("callback_enter_number", 1000, 5) == ("123", False)
    assert await ch.get_data("callback_enter_number", 1000, 5) == ("", True)
    assert await ch.wait_for_digit(1000) == "7"
    assert await ch.wait_for_digit(1000) == ""
    await ch.verbose("hello", 9)
    assert peer.commands[-1] == 'VERBOSE "hello" "4"'
    await ch.hangup()
    assert peer.commands[-1] == "HANGUP"
