"""The `hotline` command: one entry point, subcommands registered by each subsystem.

Each subsystem module exposes `register(subparsers)`, which adds its parser(s)
and sets `func` (args -> exit code) on them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in help order.
SUBCOMMAND_MODULES = (
    "telephony.lab.cli",
    "telephony.lab.sipp",
    "routing.cli",
    "ivr.cli",
    "telephony.control.cli",
    "telephony.service",
    "telephony.replay",
    "telephony.record",
    "telephony.report.cli",
    "telephony.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="Hotline Linkage Switch")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
