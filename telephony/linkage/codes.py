"""Code validators for 工单 / 警单: GB/T 2260 divisions, GB 32100 credit codes, police classes.

Pure functions over shipped data: the division table is `data/gb2260.csv` (see
`data/README.txt` for where it came from), the category codes are the routing
catalogue's own. Every check returns a `CodeCheck` whose `reason` says what is wrong
in words a call-taker can act on.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from routing.catalogue import DEFAULT_PATH as CATALOGUE_PATH
from routing.catalogue import CatalogueData, load_catalogue

DIVISIONS_PATH = Path(__file__).parent / "data" / "gb2260.csv"


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of one check. Truthy when valid; `reason` is empty then."""

    valid: bool
    reason: str = ""
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.valid


_OK = CodeCheck(True)


def _bad(reason: str) -> CodeCheck:
    return CodeCheck(False, reason)


# ---------------------------------------------------------------- GB/T 2260 divisions


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    parent: str  # "" for a province

    @property
    def level(self) -> str:
        if self.code.endswith("0000"):
            return "province"
        if self.code.endswith("00"):
            return "prefecture"
        return "county"


class DivisionTable:
    """Province, prefecture and county rows of GB/T 2260, keyed by 6-digit code."""

    def __init__(self, rows: dict[str, Division]) -> None:
        self._rows = rows

    @classmethod
    def from_csv(cls, path: Path | str) -> DivisionTable:
        rows: dict[str, Division] = {}
        with open(path, encoding="utf-8", newline="") as fh:
            for rec in csv.DictReader(fh):
                rows[rec["code"]] = Division(rec["code"], rec["name"], rec["parent"])
        return cls(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, code: object) -> bool:
        return code in self._rows

    def get(self, code: str) -> Division | None:
        return self._rows.get(code)

    def chain(self, code: str) -> tuple[Division, ...]:
        """Province first, `code` last; () when the code is not in the table."""
        out: list[Division] = []
        row = self._rows.get(code)
        while row is not None and len(out) < 3:
            out.append(row)
            row = self._rows.get(row.parent) if row.parent else None
        return tuple(reversed(out))


@functools.lru_cache(maxsize=1)
def division_table() -> DivisionTable:
    return DivisionTable.from_csv(DIVISIONS_PATH)


def _nearest_known(code6: str, table: DivisionTable) -> Division | None:
    for candidate in (code6[:4] + "00", code6[:2] + "0000"):
        if candidate != code6 and candidate in table:
            return table.get(candidate)
    return None


def check_division(code: object, table: DivisionTable | None = None) -> CodeCheck:
    """A GB/T 2260 code: 6 digits in the table, or 12 (GB/T 10114) whose first 6 are.

    The township (digits 7-9) and village (10-12) parts of a 12-digit code are checked
    for shape only: the township and village lists are not shipped.
    """
    if not isinstance(code, str):
        return _bad("must be a string of digits")
    if code and (not code.isascii() or not code.isdigit()):
        return _bad(f"{code[:20]!r} must be digits only")
    if len(code) not in (6, 12):
        return _bad(f"length {len(code)}, must be 6 or 12")
    if len(code) == 12 and code[6:9] == "000" and code[9:] != "000":
        return _bad(f"{code}: village part {code[9:]} without a township part (digits 7-9 are 000)")
    table = table or division_table()
    head = code[:6]
    if head in table:
        return _OK
    near = _nearest_known(head, table)
    where = "first 6 digits " + head if len(code) == 12 else head
    if near is None:
        return _bad(f"{where} is not in the GB/T 2260 table (no province {head[:2]}0000)")
    return _bad(f"{where} is not in the GB/T 2260 table ({near.level} {near.code} {near.name} is)")


def is_division(code: object) -> bool:
    return check_division(code).valid


def division_names(code: str) -> tuple[str, ...] | None:
    """440106 -> ('广东省', '广州市', '天河区'); a 12-digit code gives its county's chain.

    None when the code does not validate.
    """
    if not check_division(code):
        return None
    return tuple(d.name for d in division_table().chain(code[:6]))


def division_path(code: str) -> str | None:
    """440106 -> '广东省/广州市/天河区'."""
    names = division_names(code)
    return "/".join(names) if names is not None else None


# ---------------------------------------------------------------- GB 32100 credit codes

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, Z, S, V
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # 3**i mod 31
USCC_FORBIDDEN = "IOZSV"
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_CHARSET)}

# Registration authority (position 1) -> organisation types (position 2), GB 32100
# annex as commonly reproduced. Unknown pairs only warn: the annex can grow.
REGISTRATION_AUTHORITIES: dict[str, tuple[str, str]] = {
    "1": ("机构编制", "1239"),
    "2": ("外交", "19"),
    "3": ("司法行政", "123459"),
    "4": ("文化", "19"),
    "5": ("民政", "1239"),
    "6": ("旅游", "129"),
    "7": ("宗教", "129"),
    "8": ("工会", "19"),
    "9": ("工商", "123"),
    "A": ("中央军委改革和编制办公室", "19"),
    "N": ("农业", "1239"),
    "Y": ("其他", "1"),
}
CENTRAL_DIVISION = "100000"  # central-level registrations (e.g. 12100000…, 53100000…)


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for 17 characters of USCC_CHARSET."""
    if len(first17) != 17:
        raise ValueError(f"need 17 characters, got {len(first17)}")
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def _org_value(ch: str) -> int:
    return int(ch) if ch.isdigit() else ord(ch) - ord("A") + 10


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character for the first 8 characters of an organisation code."""
    if len(first8) != 8:
        raise ValueError(f"need 8 characters, got {len(first8)}")
    c = 11 - sum(_org_value(ch) * w for ch, w in zip(first8, ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def check_uscc(code: object) -> CodeCheck:
    """A unified social credit code: shape, charset, both check characters.

    Layout: registration authority (1), organisation type (1), division (6),
    organisation code (9, GB 11714, its last character its own check), check (1).
    """
    if not isinstance(code, str):
        return _bad("must be a string")
    if len(code) != 18:
        return _bad(f"length {len(code)}, must be 18")
    for pos, ch in enumerate(code, 1):
        if ch in USCC_FORBIDDEN:
            return _bad(f"letter {ch} is never used (position {pos})")
        if ch not in _USCC_VALUE:
            if ch.isascii() and ch.isalpha() and ch.upper() in _USCC_VALUE:
                return _bad(f"lowercase {ch!r} at position {pos}: letters are capitals")
            return _bad(f"character {ch!r} at position {pos} is not allowed "
                        "(0-9 and A-Z without I, O, Z, S, V)")
    division = code[2:8]
    if not division.isdigit():
        return _bad(f"positions 3-8 are the division code and must be digits, got {division}")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return _bad(f"wrong check character: expected {expected}, got {code[17]}")
    org = code[8:17]
    org_expected = org_code_check_char(org[:8])
    if org[8] != org_expected:
        return _bad(f"wrong organisation code check character (position 17, GB 11714): "
                    f"expected {org_expected}, got {org[8]}")
    warnings: list[str] = []
    authority = REGISTRATION_AUTHORITIES.get(code[0])
    if authority is None:
        warnings.append(f"unknown registration authority {code[0]}")
    elif code[1] not in authority[1]:
        warnings.append(f"unknown organisation type {code[1]} for authority {code[0]} "
                        f"({authority[0]})")
    # Registrations keep the division they were made in, which may since have been
    # abolished (330103 下城区, 2021): a division outside today's table only warns.
    if division != CENTRAL_DIVISION and division not in division_table():
        warnings.append(f"division {division} is not in the current GB/T 2260 table")
    return CodeCheck(True, "", tuple(warnings))


def is_uscc(code: object) -> bool:
    return check_uscc(code).valid


# ---------------------------------------------------------------- police incident classes

POLICE_CLASSES: dict[str, str] = {
    "1": "criminal",
    "2": "public order",
    "3": "traffic",
    "4": "fire and rescue",
    "5": "citizen help",
    "6": "social linkage",
    "7": "mass incidents",
    "8": "disasters",
    "9": "leads and complaints",
}
CONCEPT_PREFIX = "概念:"  # catalogue entries grouped by danger concept, not by incident class


class PoliceClass(NamedTuple):
    digit: str
    name: str


@functools.lru_cache(maxsize=1)
def _default_catalogue() -> CatalogueData:
    return load_catalogue(CATALOGUE_PATH)


def police_class(code: str, catalogue: CatalogueData | None = None) -> PoliceClass | None:
    """A catalogue category code -> its police class: '600603' -> ('6', 'social linkage').

    None for a code the catalogue does not have, and for its danger-concept entries
    (49xxxx, named 概念:…), which are grouped by concept rather than by police class.
    """
    data = catalogue or _default_catalogue()
    entry = data.by_code.get(code)
    if entry is None or entry.name.startswith(CONCEPT_PREFIX):
        return None
    digit = code[0]
    name = POLICE_CLASSES.get(digit)
    return PoliceClass(digit, name) if name is not None else None


def category_name(code: str, catalogue: CatalogueData | None = None) -> str | None:
    entry = (catalogue or _default_catalogue()).by_code.get(code)
    return entry.name if entry is not None else None
