"""`hotline lab up|down|status|cli`: the two-platform lab from the command line."""

from __future__ import annotations

import argparse
import json

from telephony.lab.lab import Lab, LabError
from telephony.lab.root import RootError


def _up(args: argparse.Namespace) -> int:
    lab = Lab()
    try:
        with lab.exclusive():  # never restart nodes under someone else's running test
            lab.up(timeout=args.timeout)
    except (LabError, RootError) as exc:
        print(f"lab up failed: {exc}")
        return 1
    ok, lines = lab.status()
    print("\n".join(lines))
    return 0 if ok else 1


def _down(args: argparse.Namespace) -> int:
    lab = Lab()
    with lab.exclusive():
        stopped = lab.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args: argparse.Namespace) -> int:
    lab = Lab()
    ok, lines = lab.status()
    print("\n".join(lines))
    if args.json:
        print(json.dumps({"ok": ok}))
    return 0 if ok else 1


def _cli(args: argparse.Namespace) -> int:
    print(Lab().asterisk_cli(args.platform, " ".join(args.command)), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="the two-platform Asterisk lab")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="start (or complete) the lab; idempotent")
    up.add_argument("--timeout", type=float, default=60.0)
    up.set_defaults(func=_up)
    lab_sub.add_parser("down", help="stop everything the lab started").set_defaults(func=_down)
    st = lab_sub.add_parser("status", help="what runs; exit 0 when all is up")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)
    cli = lab_sub.add_parser("cli", help="run an Asterisk CLI command on a node")
    cli.add_argument("platform", choices=["12345", "110"])
    cli.add_argument("command", nargs="+")
    cli.set_defaults(func=_cli)
    register_config(sub)


def _render(args: argparse.Namespace) -> int:
    """Render a node's config for a deployment (docker-compose) from asterisk-config/."""
    import os
    from pathlib import Path

    from telephony.lab.render import RenderError, node_values, render_node
    from telephony.lab.topology import NODES, other_platform

    secret = os.environ.get("HOTLINE_AMI_SECRET", "")
    try:
        values = node_values(
            NODES[args.platform], node_dir=args.node_dir, ami_user="hotline", ami_secret=secret,
            other_sip_port=NODES[other_platform(args.platform)].sip_port,
        )
        written = render_node(values, Path(args.out))
    except RenderError as exc:
        print(f"render failed: {exc} (set HOTLINE_AMI_SECRET)")
        return 2
    print("\n".join(str(p) for p in written))
    return 0


def register_config(sub: argparse._SubParsersAction) -> None:
    cfg = sub.add_parser("config", help="render Asterisk config for a deployment")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    r = cfg_sub.add_parser("render", help="render one node's files into a directory")
    r.add_argument("--platform", choices=["12345", "110"], required=True)
    r.add_argument("--node-dir", required=True, help="the node's directory as the node sees it")
    r.add_argument("--out", required=True)
    r.set_defaults(func=_render)
