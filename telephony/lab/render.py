"""Render asterisk-config/*.tmpl for one node.

Templates use `{{name}}` placeholders (Asterisk itself uses `${...}`, so the two
never clash). A placeholder without a value is an error, not an empty string:
a half-rendered config must not reach Asterisk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from telephony.lab.topology import DESKS, HOST, Node, other_platform

CONFIG_DIR = Path(__file__).resolve().parents[2] / "asterisk-config"
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
# The files a node needs; snippet templates are rendered into these, not on their own.
NODE_FILES = (
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "cdr.conf",
    "rtp.conf",
    "pjsip.conf",
    "extensions.conf",
    "queues.conf",
    "features.conf",
    "confbridge.conf",
    "manager.conf",
    "musiconhold.conf",
    "indications.conf",
    "cel.conf",
    "ccss.conf",
    "acl.conf",
    "udptl.conf",
    "pjproject.conf",
)

# Timing settings (seconds); sites tune them, tests may shorten them.
DEFAULT_TIMERS = {
    "xfer_ring_timeout": 20,
    "emergency_ring_timeout": 60,
    "agent_ring_timeout": 15,
    "queue_wait_timeout": 600,
    "rtp_timeout": 60,  # pjsip: a silent peer's leg is hung up (the lab sets 0: SIPp sends no RTP)
}
# The lab's SIPp peers send no RTP, so media timeouts would hang up every call.
LAB_TIMERS = {"rtp_timeout": 0}


class RenderError(ValueError):
    pass


def render_text(template: str, values: Mapping[str, object], *, source: str = "<template>") -> str:
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise RenderError(f"{source}: no value for {', '.join(missing)}")
    for key, value in values.items():
        text = str(value)
        if "\n" in text and key != "peers":
            raise RenderError(f"{source}: value for {key} contains a newline")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def _peer_block(**values: object) -> str:
    snippet = (CONFIG_DIR / "pjsip-peer.snippet.tmpl").read_text()
    return render_text(snippet, {"host": HOST, **values}, source="pjsip-peer.snippet.tmpl")


def node_values(
    node: Node,
    *,
    node_dir: str,
    ami_user: str,
    ami_secret: str,
    other_sip_port: int,
    timers: Mapping[str, int] | None = None,
) -> dict[str, object]:
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", ami_secret):
        raise RenderError("AMI secret must be 8-64 characters of [A-Za-z0-9_-]")
    peers = [
        _peer_block(
            comment=f"desk {d.number} (external emergency desk)",
            name=f"desk{d.number}",
            template="peer-defaults",
            context="from-trunk",
            user=d.number,
            port=d.sip_port,
        )
        for d in DESKS.values()
    ]
    peers += [
        _peer_block(
            comment=f"agent phone {a.endpoint}",
            name=a.endpoint,
            template="agent-endpoint",
            context="hotline-agent-out",
            user=a.endpoint,
            port=a.sip_port,
        )
        for a in node.agents
    ]
    return {
        "node": node.name,
        "platform": node.platform,
        "other_platform": other_platform(node.platform),
        "host": HOST,
        "sip_port": node.sip_port,
        "other_sip_port": other_sip_port,
        "ami_port": node.ami_port,
        "ami_user": ami_user,
        "ami_secret": ami_secret,
        "rtp_start": node.rtp_start,
        "rtp_end": node.rtp_end,
        "fastagi_port": node.fastagi_port,
        "queue": node.queue,
        "node_dir": node_dir,
        "peers": "\n".join(peers),
        **DEFAULT_TIMERS,
        **(timers or {}),
    }


def render_node(values: Mapping[str, object], out_dir: Path) -> list[Path]:
    """Write every node file into out_dir; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in NODE_FILES:
        template = (CONFIG_DIR / f"{name}.tmpl").read_text()
        target = out_dir / name
        target.write_text(render_text(template, values, source=f"{name}.tmpl"))
        written.append(target)
    return written
