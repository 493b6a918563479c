"""`hotline keys`: print the softphone key table or the features.conf applicationmap."""

from __future__ import annotations

import argparse
import sys

from telephony.control import keys


def run(args: argparse.Namespace) -> int:
    if args.applicationmap:
        print("[applicationmap]")
        print("\n".join(keys.applicationmap_lines()))
        return 0
    out = sys.stdout
    out.write(f"{'DTMF':<6}{'key':<14}{'action':<13}{'target':<8}label\n")
    for spec in keys.KEYS.values():
        out.write(f"{spec.dtmf:<6}{spec.name:<14}{spec.action:<13}{spec.target or '-':<8}"
                  f"{spec.label}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("keys", help="softphone key table (DTMF codes, action URLs)")
    parser.add_argument("--applicationmap", action="store_true",
                        help="print features.conf [applicationmap] entries instead")
    parser.set_defaults(func=run)
