"""Catalogue loading: validation errors name file and entry; reload keeps the old data."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.catalogue import (
    DEFAULT_PATH,
    PLATFORMS,
    Catalogue,
    CatalogueError,
    load_catalogue,
    parse_catalogue,
)

GOOD = """
version: 2
site: testville
entries:
- {code: "600201", name: 停电报修, platform: "12345", linkage: single, also: [power],
   keywords: [停电, 没电], examples: [小区停电了]}
- {code: "100400", name: 殴打, platform: "110", linkage: single, emergency: true,
   when_past: "100401", keywords: [打人], patterns: ["正在(打|砍)"]}
- {code: "100401", name: 殴打报告, platform: "110", keywords: [验伤], hints: [派出所]}
"""


def entry_yaml(**fields: str) -> str:
    base = {"code": '"600100"', "name": "x", "platform": '"12345"', "keywords": "[a]"}
    base.update(fields)
    body = ", ".join(f"{k}: {v}" for k, v in base.items() if v is not None)
    return f"entries:\n- {{{body}}}\n"


def test_default_catalogue_loads_with_broad_coverage() -> None:
    data = load_catalogue()
    assert len(data.entries) >= 100
    platforms = {e.platform for e in data.entries}
    assert {"12345", "110", "119", "120", "122"} <= platforms
    kinds = {e.linkage for e in data.entries}
    assert kinds == {"single", "police_first_then_12345", "three_party"}
    assert sum(e.platform == "12345" for e in data.entries) >= 40
    assert sum(e.platform == "110" for e in data.entries) >= 35
    assert all(len(e.code) == 6 for e in data.entries)


def test_parse_good_catalogue() -> None:
    data = parse_catalogue(GOOD, "good.yaml")
    assert data.site == "testville" and data.version == 2
    assert [e.code for e in data.entries] == ["600201", "100400", "100401"]
    fight = data.by_code["100400"]
    assert fight.emergency and fight.when_past == "100401"
    assert fight.patterns[0].search("他正在砍人")
    assert data.by_code["600201"].also == ("power",)
    assert data.by_code["100401"].hints == ("派出所",)
    assert data.by_code["100401"].linkage == "single"  # default


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"code": '"12"'}, "'code' must be 6 digits"),
        ({"code": "600100"}, "'code' must be 6 digits"),  # unquoted int would lose zeros
        ({"name": None}, "'name' is required"),
        ({"platform": '"999"'}, "unknown platform '999'"),
        ({"linkage": "maybe"}, "unknown linkage 'maybe'"),
        ({"keywords": None}, "'keywords' is required"),
        ({"keywords": "[]"}, "'keywords' must not be empty"),
        ({"keywords": "停电"}, "'keywords' must be a list"),
        ({"keywords": '[a, ""]'}, "'keywords' has an empty item"),
        ({"patterns": '["(unclosed"]'}, "bad pattern"),
        ({"also": "[moon]"}, "unknown platform(s) in 'also'"),
        ({"emergency": "yes please"}, "'emergency' must be true or false"),
        ({"leads": "maybe"}, "'leads' must be true or false"),
        ({"colour": "red"}, "unknown field(s): colour"),
        ({"when_past": '"999999"'}, "'when_past' names unknown code '999999'"),
    ],
)
def test_entry_errors_name_file_and_entry(fields: dict, message: str) -> None:
    with pytest.raises(CatalogueError) as err:
        parse_catalogue(entry_yaml(**fields), "site.yaml")
    text = str(err.value)
    assert text.startswith("site.yaml: entry #1")
    assert message in text


def test_error_names_the_right_entry_number_and_code() -> None:
    text = GOOD + '- {code: "600202", name: y, platform: "mars", keywords: [z]}\n'
    with pytest.raises(CatalogueError, match=r"entry #4 \(code 600202\): unknown platform"):
        parse_catalogue(text, "c.yaml")


def test_duplicate_code_rejected() -> None:
    text = GOOD + '- {code: "600201", name: again, platform: "12345", keywords: [z]}\n'
    with pytest.raises(CatalogueError, match=r"entry #4 \(code 600201\): duplicate code"):
        parse_catalogue(text, "c.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("entries: [", "not valid YAML"),
        ("- just a list", "top level must be a mapping"),
        ("entries: []", "'entries' is empty"),
        ("entries:\n- plain string", "entry #1: must be a mapping"),
        (GOOD.replace("version: 2", "version: two"), "'version' must be an integer"),
    ],
)
def test_document_errors(text: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(text, "doc.yaml")


def test_missing_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "nope.yaml")


def test_reload_swaps_in_good_file_and_keeps_old_on_bad(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(GOOD, encoding="utf-8")
    cat = Catalogue(path)
    assert cat.generation == 1 and cat.get("600201") is not None

    path.write_text(GOOD.replace("停电报修", "停电抢修"), encoding="utf-8")
    cat.reload()
    assert cat.generation == 2 and cat.get("600201").name == "停电抢修"

    path.write_text(GOOD.replace('platform: "12345"', 'platform: "999"'), encoding="utf-8")
    with pytest.raises(CatalogueError, match="entry #1"):
        cat.reload()
    assert cat.generation == 2  # unchanged
    assert cat.get("600201").name == "停电抢修"
    assert len(cat.entries) == 3


def test_platform_vocabulary_includes_utilities() -> None:
    assert {"water", "power", "gas", "heating"} <= PLATFORMS
    assert DEFAULT_PATH.name == "catalogue.yaml"
