"""docker-compose.yml stays valid and consistent with the lab (Docker itself does not run here)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from telephony.cli import main
from telephony.lab.topology import NODES, POSTGRES_PORT, REDIS_PORT

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_and_build_files_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"node12345", "node110", "redis", "postgres", "service12345", "service110",
            "prometheus"} <= set(services)
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["dockerfile"]).is_file(), name
        for dep in svc.get("depends_on", []):
            assert dep in services, (name, dep)
    assert str(REDIS_PORT) in services["redis"]["command"]
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in compose["volumes"], (name, volume)
    prom = (ROOT / "deploy/prometheus.yml").read_text()
    for node in NODES.values():
        assert f"127.0.0.1:{node.http_port}" in prom


def test_compose_postgres_is_the_archive_both_services_wait_for() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    pg = services["postgres"]
    assert str(POSTGRES_PORT) in pg["command"] and "listen_addresses=127.0.0.1" in pg["command"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    password = "${HOTLINE_PG_PASSWORD:?set HOTLINE_PG_PASSWORD}"  # required, never a default
    assert pg["environment"]["POSTGRES_PASSWORD"] == password
    health = pg["healthcheck"]["test"]
    assert "pg_isready" in health and str(POSTGRES_PORT) in health
    for platform in NODES:
        svc = services[f"service{platform}"]
        dsn = svc["environment"]["HOTLINE_ARCHIVE_DSN"]
        assert dsn.startswith("postgresql://hotline:${HOTLINE_PG_PASSWORD")
        assert dsn.endswith(f"@127.0.0.1:{POSTGRES_PORT}/hotline")
        assert svc["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_config_render_for_deployment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "deploy-secret-123")
    out = tmp_path / "node110"
    rc = main(["config", "render", "--platform", "110", "--node-dir", "/srv/hotline/node110",
               "--out", str(out)])
    assert rc == 0
    conf = (out / "asterisk.conf").read_text()
    assert "astetcdir => /srv/hotline/node110/etc" in conf
    assert "secret = deploy-secret-123" in (out / "manager.conf").read_text()
    # The compose file mounts the rendered dir exactly where asterisk.conf points.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["node110"]["volumes"]
    assert "./deploy/node110:/srv/hotline/node110/etc:ro" in volumes


def test_config_render_refuses_missing_secret(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("HOTLINE_AMI_SECRET", raising=False)
    rc = main(["config", "render", "--platform", "12345", "--node-dir", "/x", "--out",
               str(tmp_path)])
    assert rc == 2
    assert "HOTLINE_AMI_SECRET" in capsys.readouterr().out
    assert not os.listdir(tmp_path)


def test_serve_refuses_bad_deployment_config_with_a_clear_message(tmp_path: Path, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.delenv("HOTLINE_AMI_SECRET", raising=False)
    assert main(["serve", "--platform", "12345"]) == 2
    assert "HOTLINE_AMI_SECRET" in capsys.readouterr().out
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"tokens": [{"token": "short", "role": "agent", "subject": "a",'
                      ' "platform": "12345"}]}')
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "deploy-secret-123")
    monkeypatch.setenv("HOTLINE_TOKENS_FILE", str(tokens))
    assert main(["serve", "--platform", "12345"]) == 2
    assert "shorter than" in capsys.readouterr().out
    tokens.write_text("{not json")
    assert main(["serve", "--platform", "12345"]) == 2
    assert "cannot start" in capsys.readouterr().out
