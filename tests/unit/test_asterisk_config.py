"""The rendered Asterisk configuration: parseable, complete, and self-consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from asterisk.config import Config

from telephony.lab.render import (
    LAB_TIMERS,
    NODE_FILES,
    RenderError,
    node_values,
    render_node,
    render_text,
)
from telephony.lab.topology import DESKS, NODES, other_platform
from telephony.ticket_context import CHANNEL_VARS

SECRET = "test-secret-0123456789"


def _render(platform: str, out: Path) -> Path:
    node = NODES[platform]
    values = node_values(
        node, node_dir=f"/srv/test/{node.name}", ami_user="hotline", ami_secret=SECRET,
        other_sip_port=NODES[other_platform(platform)].sip_port,
    )
    render_node(values, out)
    return out


@pytest.fixture(params=sorted(NODES))
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    return request.param, _render(request.param, tmp_path / request.param)


def _categories(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Parse with pyst2's asterisk.config. It predates template sections
    (`[name](!,base)`), so those suffixes are cut to plain `[name]` first."""
    plain = path.with_suffix(".plain")
    plain.write_text(re.sub(r"^(\[[^\]]+\])\([^)]*\)", r"\1", path.read_text(), flags=re.M))
    cfg = Config(str(plain))
    out: dict[str, list[tuple[str, str]]] = {}
    for cat in cfg.categories:
        out.setdefault(cat.name, []).extend((i.name, i.value.strip()) for i in cat.items)
    return out


def test_every_file_renders_and_parses(rendered: tuple[str, Path]) -> None:
    _, out = rendered
    for name in NODE_FILES:
        text = (out / name).read_text()
        assert "{{" not in text and "}}" not in text, name
        _categories(out / name)  # raises ParseError on malformed files


def test_ports_and_secret_are_this_nodes(rendered: tuple[str, Path]) -> None:
    platform, out = rendered
    node = NODES[platform]
    manager = _categories(out / "manager.conf")
    assert ("port", str(node.ami_port)) in manager["general"]
    assert ("bindaddr", "127.0.0.1") in manager["general"]
    assert ("timestampevents", "yes") in manager["general"]
    user = dict(manager["hotline"])
    assert user["secret"] == SECRET
    assert user["permit"] == "127.0.0.1/255.255.255.255"
    assert int(user["writetimeout"]) >= 1000
    # Least privilege: no command/config/dialplan write rights.
    assert not {"command", "config", "all", "dialplan"} & set(user["write"].split(","))
    pjsip = _categories(out / "pjsip.conf")
    assert ("bind", f"127.0.0.1:{node.sip_port}") in pjsip["transport-udp"]
    rtp = dict(_categories(out / "rtp.conf")["general"])
    assert (int(rtp["rtpstart"]), int(rtp["rtpend"])) == (node.rtp_start, node.rtp_end)


def test_channelvars_carry_every_ticket_variable(rendered: tuple[str, Path]) -> None:
    _, out = rendered
    general = dict(_categories(out / "manager.conf")["general"])
    assert set(CHANNEL_VARS) <= set(general["channelvars"].split(","))


def test_trunk_desks_and_agents_are_defined(rendered: tuple[str, Path]) -> None:
    platform, out = rendered
    text = (out / "pjsip.conf").read_text()
    other = NODES[other_platform(platform)]
    assert f"[trunk{other.platform}]" in text
    assert f"match = 127.0.0.1:{other.sip_port}" in text
    for desk in DESKS.values():
        assert f"contact = sip:{desk.number}@127.0.0.1:{desk.sip_port}" in text
    for agent in NODES[platform].agents:
        assert f"match = 127.0.0.1:{agent.sip_port}" in text


def _contexts_and_targets(text: str) -> tuple[set[str], set[str]]:
    contexts = set(re.findall(r"^\[([A-Za-z0-9_-]+)\]", text, re.M))
    targets = set()
    for m in re.finditer(r"(?:Goto|Gosub)\(([A-Za-z0-9_-]+),[^,()]+,", text):
        targets.add(m.group(1))
    for m in re.finditer(r"b\(([A-Za-z0-9_-]+)\^", text):
        targets.add(m.group(1))
    return contexts, targets


def test_every_dialplan_jump_lands_in_a_defined_context(rendered: tuple[str, Path]) -> None:
    _, out = rendered
    contexts, targets = _contexts_and_targets((out / "extensions.conf").read_text())
    assert targets, "the dialplan should jump somewhere"
    assert targets <= contexts, targets - contexts
    # Contexts named by other files exist too.
    pjsip = (out / "pjsip.conf").read_text()
    for ctx in re.findall(r"^context = (\S+)", pjsip, re.M):
        assert ctx in contexts
    confbridge = (out / "confbridge.conf").read_text()
    for ctx in re.findall(r"dialplan_exec\(([A-Za-z0-9_-]+),", confbridge):
        assert ctx in contexts


def test_ingress_falls_back_to_the_queue_when_fastagi_is_down(rendered: tuple[str, Path]) -> None:
    _, out = rendered
    lines = (out / "extensions.conf").read_text().split("[from-citizen]")[1].splitlines()
    agi = next(i for i, line in enumerate(lines) if "AGI(" in line)
    # The first step after AGI routes, defaulting an empty HOTLINE_DEST to the queue.
    step = next(line for line in lines[agi + 1 :] if line.lstrip().startswith("same"))
    assert 'Goto(hotline-route,${IF($["${HOTLINE_DEST}" = ""]?queue:' in step


def test_feature_keys_raise_user_events_only(rendered: tuple[str, Path]) -> None:
    _, out = rendered
    appmap = _categories(out / "features.conf")["applicationmap"]
    assert len(appmap) == 8
    for name, value in appmap:
        digits, activate, app = (v.strip() for v in value.split(";")[0].split(",", 2))
        assert re.fullmatch(r"\*\d", digits)
        assert activate == "self"
        assert app == f"UserEvent(HotlineKey,Key: {name})"


def test_render_refuses_missing_values_and_bad_secrets() -> None:
    with pytest.raises(RenderError, match="no value for port"):
        render_text("bind = {{port}}", {})
    with pytest.raises(RenderError, match="newline"):
        render_text("secret = {{secret}}", {"secret": "a\nAction: Originate"})
    with pytest.raises(RenderError, match="AMI secret"):
        node_values(
            NODES["12345"], node_dir="/x", ami_user="hotline", ami_secret="short",
            other_sip_port=1,
        )


def test_media_timeout_on_in_a_deployment_off_in_the_lab(tmp_path: Path) -> None:
    # A deployment hangs up a leg whose phone vanished without a BYE; the lab's SIPp
    # peers send no RTP, so there the timeout must be off or every call would drop.
    deployed = _categories(_render("12345", tmp_path / "deploy") / "pjsip.conf")
    assert ("rtp_timeout", "60") in deployed["peer-defaults"]
    node = NODES["12345"]
    lab_values = node_values(
        node, node_dir="/srv/lab", ami_user="hotline", ami_secret=SECRET,
        other_sip_port=NODES["110"].sip_port, timers=LAB_TIMERS,
    )
    lab = _categories(render_node(lab_values, tmp_path / "lab")[0].parent / "pjsip.conf")
    assert ("rtp_timeout", "0") in lab["peer-defaults"]
