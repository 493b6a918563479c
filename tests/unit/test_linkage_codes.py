"""telephony.linkage.codes: GB/T 2260 divisions, GB 32100 credit codes, police classes."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.catalogue import load_catalogue, parse_catalogue
from telephony.linkage import codes
from telephony.linkage.codes import (
    USCC_CHARSET,
    USCC_WEIGHTS,
    check_division,
    check_uscc,
    division_names,
    division_path,
    org_code_check_char,
    police_class,
    uscc_check_char,
)

# Published unified social credit codes, each seen attributed to its holder in several
# independent public sources (company pages, footers, court and procurement texts).
# Not checked against the national registry (no network here); they are used because
# both check characters hold on every one, which the algorithm alone cannot fake.
REAL_USCC = [
    ("91440300708461136T", "腾讯科技（深圳）有限公司"),
    ("914403001922038216", "华为技术有限公司"),
    ("91110108551385082Q", "小米科技有限责任公司"),
    ("91330100799655058B", "阿里巴巴（中国）有限公司"),
    ("91110000802100433B", "北京百度网讯科技有限公司"),
    ("91440300MA5H0HLK5U", "柯兴科技（深圳）有限公司 (site footer)"),
    ("91133100MA0D8N1J7G", "a company in 雄安新区 (133100 is not in the table: a warning)"),
    ("92230109MAKCUYD46K", "哈尔滨市松北区算云软件开发工作室 (个体工商户)"),
    ("92340111MAD2LARQ9N", "个体工商户, site footer"),
    ("92140727MAE8C7WN66", "祁县天天开心商贸行 (个体工商户)"),
    ("12310000425022547M", "上海工程技术大学 (事业单位)"),
    ("12100000470095016Q", "浙江大学 (事业单位, central level 100000)"),
    ("12100000425006117P", "复旦大学 (事业单位, central level 100000)"),
    ("11140800558745220K", "晋中市文化和旅游局 (机关)"),
    ("11410182005291054B", "荥阳市司法局 (机关)"),
    ("51310110501144395U", "a 社会团体 registered in 上海市杨浦区"),
    ("53100000500019795A", "a 基金会 registered with 民政部"),
]
REAL_CODES = [c for c, _ in REAL_USCC]


def make_uscc(head8: str, org8: str) -> str:
    """A code built with the two algorithms: authority, type, division (8), org code (8)."""
    org = org8 + org_code_check_char(org8)
    return head8 + org + uscc_check_char(head8 + org)


# ---------------------------------------------------------------- unified social credit codes


@pytest.mark.parametrize(("code", "holder"), REAL_USCC)
def test_real_published_codes_validate(code: str, holder: str) -> None:
    result = check_uscc(code)
    assert result.valid, (holder, result.reason)
    assert result.reason == ""
    assert bool(result) is True


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_pass_the_gb11714_rule_too(code: str) -> None:
    # The brief asked to check the organisation-code rule on real codes before enforcing it.
    assert org_code_check_char(code[8:16]) == code[16]


def test_only_the_division_warning_on_a_real_code_outside_the_table() -> None:
    assert check_uscc("91133100MA0D8N1J7G").warnings == (
        "division 133100 is not in the current GB/T 2260 table",)
    assert check_uscc("12100000470095016Q").warnings == ()  # 100000: central level
    assert check_uscc("91440300708461136T").warnings == ()


@pytest.mark.parametrize(("code", "reason"), [
    ("91440300708461136X", "wrong check character: expected T, got X"),
    ("914403001922038217", "wrong check character: expected 6, got 7"),
    ("91110108551385082A", "wrong check character: expected Q, got A"),
    ("9144030070846113T", "length 17, must be 18"),
    ("91440300708461136TT", "length 19, must be 18"),
    ("", "length 0, must be 18"),
    ("91440300708461I36T", "letter I is never used (position 15)"),
    ("91440300708461O36T", "letter O is never used (position 15)"),
    ("91440300708461Z36T", "letter Z is never used (position 15)"),
    ("S1440300708461136T", "letter S is never used (position 1)"),
    ("91440300708461136V", "letter V is never used (position 18)"),
    ("91440300ma5h0hlk5u", "lowercase 'm' at position 9: letters are capitals"),
    ("91440300-08461136T", "character '-' at position 9 is not allowed "
                           "(0-9 and A-Z without I, O, Z, S, V)"),
    ("914403007084611３6T", "character '３' at position 16 is not allowed "
                           "(0-9 and A-Z without I, O, Z, S, V)"),
    ("9144A300708461136T", "positions 3-8 are the division code and must be digits, got 44A300"),
])
def test_bad_codes_say_why(code: str, reason: str) -> None:
    result = check_uscc(code)
    assert not result.valid
    assert result.reason == reason


def test_non_strings_are_rejected() -> None:
    assert check_uscc(914403001922038216).reason == "must be a string"
    assert check_uscc(None).reason == "must be a string"


def test_wrong_organisation_check_with_a_right_overall_check() -> None:
    good = make_uscc("91440300", "70846113")
    assert check_uscc(good).valid
    wrong_org = good[:16] + ("7" if good[16] != "7" else "8")
    forged = wrong_org + uscc_check_char(wrong_org)  # the GB 32100 check still holds
    result = check_uscc(forged)
    assert not result.valid
    assert result.reason == (f"wrong organisation code check character (position 17, GB 11714): "
                             f"expected {good[16]}, got {wrong_org[16]}")


def _org_raw(first8: str) -> int:
    value = {**{str(d): d for d in range(10)}, **{chr(65 + i): 10 + i for i in range(26)}}
    return 11 - sum(value[c] * w for c, w in zip(first8, codes.ORG_WEIGHTS, strict=True)) % 11


def test_organisation_check_values() -> None:
    # GB 11714's own examples are not at hand; these come from the real codes above.
    assert org_code_check_char("70846113") == "6"
    assert org_code_check_char("MAKCUYD4") == "6"
    assert org_code_check_char("00529105") == "4"
    x_case = next(f"{n:08d}" for n in range(1000) if _org_raw(f"{n:08d}") == 10)
    zero_case = next(f"{n:08d}" for n in range(1000) if _org_raw(f"{n:08d}") == 11)
    assert org_code_check_char(x_case) == "X"
    assert org_code_check_char(zero_case) == "0"
    assert org_code_check_char("MA5H0HLK") == "5"  # letters count A=10 ... Z=35
    with pytest.raises(ValueError, match="need 8"):
        org_code_check_char("1234567")


def test_gb11714_misses_some_substitutions_that_gb32100_catches() -> None:
    # 0 and B differ by 11, so mod 11 a 0 -> B swap goes unseen by the organisation
    # check; the 18th character still catches it.
    org8, swapped = "70846113", "7B846113"
    assert org_code_check_char(org8) == org_code_check_char(swapped)
    good = make_uscc("91440300", org8)
    bad = good[:8] + swapped + good[16:]
    assert check_uscc(bad).reason.startswith("wrong check character")


def test_weights_are_powers_of_three_mod_31() -> None:
    assert list(USCC_WEIGHTS) == [pow(3, i, 31) for i in range(17)]
    assert all(w % 31 for w in USCC_WEIGHTS)  # 31 is prime: every substitution shifts the sum


def test_check_character_31_maps_to_zero() -> None:
    # sum % 31 == 0 -> 31 - 0 = 31 -> '0'
    assert uscc_check_char("0" * 17) == "0"
    with pytest.raises(ValueError, match="need 17"):
        uscc_check_char("0" * 16)


@pytest.mark.parametrize("code", REAL_CODES)
def test_every_single_substitution_of_a_real_code_is_rejected(code: str) -> None:
    for pos in range(18):
        for ch in USCC_CHARSET + "IOZSV":
            if ch != code[pos]:
                changed = code[:pos] + ch + code[pos + 1:]
                assert not check_uscc(changed).valid, (pos, ch)


@pytest.mark.parametrize("code", REAL_CODES)
def test_every_adjacent_transposition_in_the_first_17_is_rejected(code: str) -> None:
    for pos in range(16):
        if code[pos] != code[pos + 1]:
            swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2:]
            assert not check_uscc(swapped).valid, pos


_CHARSET = st.sampled_from(USCC_CHARSET)
_DIGIT = st.sampled_from("0123456789")


@given(st.text(_CHARSET, min_size=17, max_size=17))
def test_any_17_characters_get_a_check_character_from_the_charset(first17: str) -> None:
    check = uscc_check_char(first17)
    assert check in USCC_CHARSET
    # What the GB 32100 check itself accepts: exactly one of the 31 last characters.
    assert [c for c in USCC_CHARSET if uscc_check_char(first17) == c] == [check]


@given(_CHARSET, _CHARSET, st.text(_DIGIT, min_size=6, max_size=6),
       st.text(_CHARSET, min_size=8, max_size=8))
def test_any_structured_17_plus_checks_validates(authority: str, kind: str, division: str,
                                                 org8: str) -> None:
    # Any 17 charset characters plus the computed check pass GB 32100; check_uscc also
    # needs digits in 3-8 and a GB 11714 organisation check, so build those too.
    code = make_uscc(authority + kind + division, org8)
    assert check_uscc(code).valid, check_uscc(code).reason


@given(_CHARSET, _CHARSET, st.text(_DIGIT, min_size=6, max_size=6),
       st.text(_CHARSET, min_size=8, max_size=8), st.integers(0, 17), _CHARSET)
def test_any_single_substitution_is_rejected(authority: str, kind: str, division: str,
                                             org8: str, pos: int, ch: str) -> None:
    code = make_uscc(authority + kind + division, org8)
    if code[pos] == ch:
        return
    changed = code[:pos] + ch + code[pos + 1:]
    result = check_uscc(changed)
    assert not result.valid
    assert result.reason  # always says why


@given(st.text(_CHARSET, min_size=17, max_size=17), st.integers(0, 16), _CHARSET)
def test_the_gb32100_check_alone_catches_every_substitution(first17: str, pos: int,
                                                            ch: str) -> None:
    if first17[pos] != ch:
        changed = first17[:pos] + ch + first17[pos + 1:]
        assert uscc_check_char(changed) != uscc_check_char(first17)


@given(st.text(_CHARSET, min_size=17, max_size=17), st.integers(0, 15))
def test_the_gb32100_check_catches_every_adjacent_transposition(first17: str, pos: int) -> None:
    a, b = first17[pos], first17[pos + 1]
    if a != b:
        swapped = first17[:pos] + b + a + first17[pos + 2:]
        assert uscc_check_char(swapped) != uscc_check_char(first17)


# ---------------------------------------------------------------- divisions


@pytest.mark.parametrize(("code", "names"), [
    ("440100", ("广东省", "广州市")),
    ("440106", ("广东省", "广州市", "天河区")),
    ("110101", ("北京市", "东城区")),  # municipality: no prefecture level
    ("440000", ("广东省",)),
    ("110000", ("北京市",)),
    ("441900", ("广东省", "东莞市")),  # a prefecture with no counties
    ("419001", ("河南省", "济源市")),  # county-level city directly under the province
    ("330113", ("浙江省", "杭州市", "临平区")),  # created 2021
    ("659012", ("新疆维吾尔自治区", "白杨市")),
    ("810000", ("香港特别行政区",)),
    ("440106001001", ("广东省", "广州市", "天河区")),  # 12 digits: township 001, village 001
    ("440106011000", ("广东省", "广州市", "天河区")),  # township level
])
def test_valid_divisions_and_their_names(code: str, names: tuple[str, ...]) -> None:
    assert check_division(code).valid, check_division(code).reason
    assert division_names(code) == names
    assert division_path(code) == "/".join(names)


@pytest.mark.parametrize(("code", "reason"), [
    ("999999", "999999 is not in the GB/T 2260 table (no province 990000)"),
    ("440199", "440199 is not in the GB/T 2260 table (prefecture 440100 广州市 is)"),
    ("440300999", "length 9, must be 6 or 12"),
    ("12345", "length 5, must be 6 or 12"),
    ("", "length 0, must be 6 or 12"),
    ("44010a", "'44010a' must be digits only"),
    ("４４０１０６", "'４４０１０６' must be digits only"),  # full-width digits
    ("110100", "110100 is not in the GB/T 2260 table (province 110000 北京市 is)"),
    ("440171", "440171 is not in the GB/T 2260 table (prefecture 440100 广州市 is)"),
    ("440106000001", "440106000001: village part 001 without a township part "
                     "(digits 7-9 are 000)"),
    ("999999001001", "first 6 digits 999999 is not in the GB/T 2260 table (no province 990000)"),
])
def test_invalid_divisions_say_why(code: str, reason: str) -> None:
    result = check_division(code)
    assert not result.valid
    assert result.reason == reason
    assert division_names(code) is None
    assert division_path(code) is None


def test_division_non_string() -> None:
    assert check_division(440106).reason == "must be a string of digits"


def test_the_shipped_table_is_consistent() -> None:
    with open(codes.DIVISIONS_PATH, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == ["code", "name", "parent"]
    by_code = {r["code"]: r for r in rows}
    assert len(by_code) == len(rows) > 3000
    provinces = [r for r in rows if not r["parent"]]
    assert len(provinces) == 34
    for r in rows:
        code, parent = r["code"], r["parent"]
        assert len(code) == 6 and code.isdigit() and r["name"].strip(), r
        assert code[4] != "7", r  # statistical-only areas are trimmed
        if parent:
            assert parent in by_code, r
            assert not by_code[parent]["parent"] or parent.endswith("00"), r
            assert parent[:2] == code[:2], r
            if not parent.endswith("0000"):
                assert parent[:4] == code[:4], r
        else:
            assert code.endswith("0000"), r
    assert len(codes.division_table()) == len(rows)


def test_table_levels() -> None:
    table = codes.division_table()
    assert table.get("440000").level == "province"  # type: ignore[union-attr]
    assert table.get("440100").level == "prefecture"  # type: ignore[union-attr]
    assert table.get("440106").level == "county"  # type: ignore[union-attr]
    assert table.chain("999999") == ()


# ---------------------------------------------------------------- police classes


@pytest.mark.parametrize(("code", "expected"), [
    ("600603", ("6", "social linkage")),  # 路灯故障
    ("100100", ("1", "criminal")),
    ("200100", ("2", "public order")),
    ("300100", ("3", "traffic")),
    ("400100", ("4", "fire and rescue")),
    ("500300", ("5", "citizen help")),
    ("700100", ("7", "mass incidents")),
    ("900100", ("9", "leads and complaints")),
])
def test_police_class_of_catalogue_codes(code: str, expected: tuple[str, str]) -> None:
    assert police_class(code) == expected


@pytest.mark.parametrize("code", ["490100", "490900", "999999", "600699", "", "abc"])
def test_no_police_class_for_concepts_and_unknown_codes(code: str) -> None:
    assert police_class(code) is None


def test_every_catalogue_category_maps_to_its_first_digit() -> None:
    data = load_catalogue()
    mapped = 0
    for entry in data.entries:
        cls = police_class(entry.code)
        if entry.name.startswith(codes.CONCEPT_PREFIX):
            assert cls is None
            continue
        assert cls is not None and cls.digit == entry.code[0], entry.code
        mapped += 1
    assert mapped > 100
    assert codes.category_name("600603") == "路灯故障"
    assert codes.category_name("999999") is None


def test_police_class_reads_the_given_catalogue() -> None:
    data = parse_catalogue(
        'entries:\n- {code: "800100", name: 地震, platform: "110", keywords: [地震]}\n')
    assert police_class("800100", data) == ("8", "disasters")
    assert police_class("600603", data) is None
