"""`hotline route classify|eval` through register() with a fresh parser."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from routing import cli


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    parser = argparse.ArgumentParser(prog="hotline")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return args.func(args)


def test_classify_one_json_line_per_input_line(monkeypatch, capsys) -> None:
    code = run(["route", "classify"], monkeypatch, stdin="着火了\n\n我家停水了\n")
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # blank input line skipped
    first, second = (json.loads(x) for x in lines)
    assert first["text"] == "着火了" and first["emergency"] is True and first["primary"] == "119"
    assert second["primary"] == "12345" and second["emergency"] is False
    assert "着火了" in lines[0]  # ensure_ascii=False keeps Chinese readable


def test_classify_with_receiving_adds_action(monkeypatch, capsys) -> None:
    assert run(["route", "classify", "--receiving", "110"], monkeypatch, stdin="我家停水了\n") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["action"]["action"] == "transfer" and out["action"]["targets"] == ["12345"]


def test_classify_bad_catalogue_exits_2(monkeypatch, capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries: []", encoding="utf-8")
    assert run(["route", "classify", "--catalogue", str(bad)], monkeypatch, "x\n") == 2
    assert "'entries' is empty" in capsys.readouterr().err


def write_tsv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "set.tsv"
    path.write_text(body, encoding="utf-8")
    return path


def test_eval_prints_accuracy_and_confusion(monkeypatch, capsys, tmp_path: Path) -> None:
    path = write_tsv(tmp_path, "# comment\n着火了\t119|110\n我家停水了\t12345\n有人在赌博\t12345\n")
    assert run(["route", "eval", str(path)], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "accuracy: 2/3 = 66.7%" in out
    assert "confusion" in out
    assert "line 4: 有人在赌博" in out  # the miss is listed with its line number
    assert "emergencies sent to a non-emergency platform: 0" in out


def test_eval_exits_1_when_an_emergency_goes_to_12345(monkeypatch, capsys, tmp_path) -> None:
    # The catalogue below knows no danger words, so with rules only the fire lands in 12345.
    cat = tmp_path / "c.yaml"
    cat.write_text('entries:\n- {code: "600001", name: A, platform: "12345", keywords: [着火]}\n',
                   encoding="utf-8")
    path = write_tsv(tmp_path, "着火了\t119\n")
    args = ["route", "eval", str(path), "--catalogue", str(cat)]
    assert run([*args, "--rules-only"], monkeypatch) == 1
    out = capsys.readouterr().out
    assert "emergencies sent to a non-emergency platform: 1" in out
    assert "line 1: 着火了 -> 12345" in out
    # The n-gram model, trained on the shipped sets, reads the fire the catalogue misses.
    assert run(args, monkeypatch) == 0
    assert "emergencies sent to a non-emergency platform: 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("body", "message"),
    [("只有文本没有标签\n", "expected text<TAB>platforms"), ("文本\t999\n", "bad platform label")],
)
def test_eval_bad_tsv_exits_2(monkeypatch, capsys, tmp_path, body: str, message: str) -> None:
    assert run(["route", "eval", str(write_tsv(tmp_path, body))], monkeypatch) == 2
    assert message in capsys.readouterr().err


def test_eval_missing_file_exits_2(monkeypatch, capsys, tmp_path) -> None:
    assert run(["route", "eval", str(tmp_path / "none.tsv")], monkeypatch) == 2
    assert "error" in capsys.readouterr().err
