"""The responsibility catalogue (职责清单): site-editable data, validated, reloadable.

Loading reads one YAML file; everything after that is pure. A bad file never
replaces a good catalogue: `Catalogue.reload()` keeps the old entries and raises.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).parent / "data" / "catalogue.yaml"

EMERGENCY_PLATFORMS = frozenset({"110", "119", "120", "122"})
HOTLINE_PLATFORMS = frozenset({"12345"})
UTILITY_PLATFORMS = frozenset({"water", "power", "gas", "heating"})
PLATFORMS = EMERGENCY_PLATFORMS | HOTLINE_PLATFORMS | UTILITY_PLATFORMS

LINKAGE_KINDS = frozenset({"single", "police_first_then_12345", "three_party"})
_CODE_RE = re.compile(r"^\d{6}$")
_KNOWN_FIELDS = frozenset(
    {"code", "name", "platform", "linkage", "emergency", "also", "when_past", "leads",
     "keywords", "hints", "patterns", "examples"}
)


class CatalogueError(ValueError):
    """Bad catalogue data; the message names the file and the entry."""


@dataclass(frozen=True)
class Entry:
    code: str
    name: str
    platform: str
    linkage: str
    keywords: tuple[str, ...]
    hints: tuple[str, ...] = ()  # weak context words (楼上, 隔壁): support, never decide alone
    patterns: tuple[re.Pattern[str], ...] = ()
    examples: tuple[str, ...] = ()
    emergency: bool = False
    also: tuple[str, ...] = ()
    when_past: str | None = None  # entry that takes this matter once it is over
    # A live hit makes this desk primary even when 110 is also involved: a person not
    # breathing needs the ambulance first (CPR in progress after a drowning -> 120).
    leads: bool = False


@dataclass(frozen=True)
class CatalogueData:
    site: str
    version: int
    entries: tuple[Entry, ...]
    by_code: dict[str, Entry] = field(repr=False)


def _fail(source: str, where: str, msg: str) -> CatalogueError:
    return CatalogueError(f"{source}: {where}: {msg}")


def _str_list(raw: Any, key: str, source: str, where: str, required: bool) -> tuple[str, ...]:
    if raw is None:
        if required:
            raise _fail(source, where, f"'{key}' is required")
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str | int) for x in raw):
        raise _fail(source, where, f"'{key}' must be a list of strings")
    items = tuple(str(x).strip() for x in raw)
    if any(not x for x in items):
        raise _fail(source, where, f"'{key}' has an empty item")
    if required and not items:
        raise _fail(source, where, f"'{key}' must not be empty")
    return items


def _parse_entry(raw: Any, index: int, source: str) -> Entry:
    where = f"entry #{index}"
    if not isinstance(raw, dict):
        raise _fail(source, where, "must be a mapping")
    raw_code = raw.get("code", "")
    code = str(raw_code).strip()
    if code:
        where = f"entry #{index} (code {code})"
    # An unquoted code is a YAML number: 060100 would silently become 24640 (octal).
    if not isinstance(raw_code, str) or not _CODE_RE.match(code):
        raise _fail(source, where, "'code' must be 6 digits, quoted in YAML")
    unknown = set(raw) - _KNOWN_FIELDS
    if unknown:
        raise _fail(source, where, f"unknown field(s): {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(source, where, "'name' is required")
    platform = str(raw.get("platform", ""))
    if platform not in PLATFORMS:
        raise _fail(source, where, f"unknown platform {platform!r}; one of {sorted(PLATFORMS)}")
    linkage = raw.get("linkage", "single")
    if linkage not in LINKAGE_KINDS:
        raise _fail(source, where, f"unknown linkage {linkage!r}; one of {sorted(LINKAGE_KINDS)}")
    emergency = raw.get("emergency", False)
    if not isinstance(emergency, bool):
        raise _fail(source, where, "'emergency' must be true or false")
    also = _str_list(raw.get("also"), "also", source, where, required=False)
    bad_also = [p for p in also if p not in PLATFORMS]
    if bad_also:
        raise _fail(source, where, f"unknown platform(s) in 'also': {bad_also}")
    patterns = []
    for text in _str_list(raw.get("patterns"), "patterns", source, where, required=False):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            raise _fail(source, where, f"bad pattern {text!r}: {exc}") from None
    leads = raw.get("leads", False)
    if not isinstance(leads, bool):
        raise _fail(source, where, "'leads' must be true or false")
    when_past = raw.get("when_past")
    if when_past is not None:
        when_past = str(when_past)
    return Entry(
        code=code, name=name.strip(), platform=platform, linkage=linkage,
        keywords=_str_list(raw.get("keywords"), "keywords", source, where, required=True),
        hints=_str_list(raw.get("hints"), "hints", source, where, required=False),
        patterns=tuple(patterns),
        examples=_str_list(raw.get("examples"), "examples", source, where, required=False),
        emergency=emergency, also=also, when_past=when_past, leads=leads,
    )


def parse_catalogue(text: str, source: str = "<string>") -> CatalogueData:
    """Parse and validate catalogue YAML text. Pure."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise CatalogueError(f"{source}: top level must be a mapping with an 'entries' list")
    if not doc["entries"]:
        raise CatalogueError(f"{source}: 'entries' is empty")
    entries = tuple(_parse_entry(raw, i, source) for i, raw in enumerate(doc["entries"], 1))
    by_code: dict[str, Entry] = {}
    for i, entry in enumerate(entries, 1):
        if entry.code in by_code:
            raise _fail(source, f"entry #{i} (code {entry.code})", "duplicate code")
        by_code[entry.code] = entry
    for i, entry in enumerate(entries, 1):
        if entry.when_past is not None and entry.when_past not in by_code:
            raise _fail(source, f"entry #{i} (code {entry.code})",
                        f"'when_past' names unknown code {entry.when_past!r}")
    version = doc.get("version", 1)
    if not isinstance(version, int):
        raise CatalogueError(f"{source}: 'version' must be an integer")
    return CatalogueData(site=str(doc.get("site", "default")), version=version,
                         entries=entries, by_code=by_code)


def load_catalogue(path: Path | str = DEFAULT_PATH) -> CatalogueData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_catalogue(text, source=str(path))


class Catalogue:
    """A live catalogue. `reload()` swaps in a new file atomically, or keeps the old one."""

    def __init__(self, path: Path | str = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data = load_catalogue(self.path)
        self.generation = 1  # bumps on each successful reload; classifiers rebuild on change

    @property
    def data(self) -> CatalogueData:
        return self._data

    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._data.entries

    def get(self, code: str) -> Entry | None:
        return self._data.by_code.get(code)

    def reload(self) -> CatalogueData:
        """Load the file again. On error the previous data stays and CatalogueError is raised."""
        fresh = load_catalogue(self.path)
        with self._lock:
            self._data = fresh
            self.generation += 1
        return fresh
