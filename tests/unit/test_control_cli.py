"""`hotline keys` through a fresh parser."""

from __future__ import annotations

import argparse

import pytest

from telephony.control import cli


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hotline")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_key_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["keys"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "*1" in out and "xfer110" in out and "leave3way" in out


def test_applicationmap(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["keys", "--applicationmap"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[applicationmap]"
    assert "pull120 => *6,self,UserEvent(HotlineKey,Key: pull120)" in lines
