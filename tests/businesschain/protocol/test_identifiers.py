"""Identifiers of ECP/1 §2 with the check characters of GB 32100, GB 11714 and GB 11643."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from businesschain.protocol import identifiers as ids

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def independent_uscc_check(first17: str) -> str:
    total = sum(USCC_CHARSET.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    return USCC_CHARSET[(31 - total % 31) % 31]


def independent_prc_check(first17: str) -> str:
    total = sum(int(c) * pow(2, 17 - i, 11) for i, c in enumerate(first17))
    return "10X98765432"[total % 11]


# The worked example of GB 32100-2015 and a code issued to a real company.
VALID_USCC = ("91350100M000100Y43", "91110000600037341L")
# The example of GB 11643-1999.
VALID_PRC_ID = "11010519491231002X"


@pytest.mark.parametrize("code", VALID_USCC)
def test_known_usccs_are_valid_and_their_check_character_is_recomputed(code):
    assert ids.is_uscc(code)
    assert ids.uscc_check_char(code[:17]) == code[17] == independent_uscc_check(code[:17])
    assert ids.entity_id_type(code) == "USCC"
    assert ids.is_org_id(code) and ids.is_entity_id(code) and not ids.is_person_id(code)


def test_gb_11714_organisation_code_check_character():
    assert ids.org_code_check_char("D2143569") == "X"  # the example of GB 11714-1997
    assert ids.org_code_check_char("M000100Y") == "4"
    assert ids.org_code_check_char("60003734") == "1"


@pytest.mark.parametrize("code", VALID_USCC)
def test_every_wrong_check_character_makes_a_uscc_invalid(code):
    for c in USCC_CHARSET:
        if c != code[17]:
            assert not ids.is_uscc(code[:17] + c)
    assert ids.uscc_problem(code[:17] + ("0" if code[17] != "0" else "1")) == (
        "the USCC check character (position 18) is wrong")


def test_embedded_organisation_code_is_checked_only_when_turned_on(monkeypatch):
    first17 = "91350100M000100Y5"  # organisation-code check 5 instead of 4
    code = first17 + ids.uscc_check_char(first17)
    # ECP/1 §2 names only the GB 32100 check character: the spec calls this id valid.
    assert ids.is_uscc(code)
    monkeypatch.setattr(ids, "CHECK_EMBEDDED_ORG_CODE", True)
    ids_problem = ids.uscc_problem(code) or ""
    assert "organisation code" in ids_problem


@pytest.mark.parametrize("code", [
    "91350100M000100Y4", "91350100M000100Y433", "91350100m000100Y43", "91350100I000100Y43",
    "91350100M000100Y43\n", "９1350100M000100Y43", 91350100,
])
def test_malformed_usccs_are_invalid(code):
    assert not ids.is_uscc(code)


def test_prc_id_standard_example_is_valid():
    assert ids.is_prc_id(VALID_PRC_ID)
    assert ids.prc_id_check_char(VALID_PRC_ID[:17]) == "X" == independent_prc_check(VALID_PRC_ID[:17])
    assert ids.entity_id_type(VALID_PRC_ID) == "PRC_ID"
    assert ids.is_person_id(VALID_PRC_ID) and not ids.is_org_id(VALID_PRC_ID)


@pytest.mark.parametrize(("code", "why"), [
    ("110105194912310021", "check character"),
    ("11010519491231002x", "17 digits"),
    ("11010519490230002" + independent_prc_check("11010519490230002"), "birth date"),
    ("11010519491331002" + independent_prc_check("11010519491331002"), "birth date"),
    ("11010500001231002" + independent_prc_check("11010500001231002"), "birth date"),
    ("1101051949123100X2", "17 digits"),
    ("11010519491231002", "17 digits"),
])
def test_invalid_prc_ids_say_why(code, why):
    assert not ids.is_prc_id(code)
    assert why in (ids.prc_id_problem(code) or "")


def test_leap_day_birth_dates():
    assert ids.is_prc_id("11010520000229001" + independent_prc_check("11010520000229001"))
    assert not ids.is_prc_id("11010519000229001" + independent_prc_check("11010519000229001"))


@pytest.mark.parametrize(("value", "ok"), [
    ("HK:12345678", True), ("US:ab-CD-9", True), ("GB:" + "a" * 40, True),
    ("GB:" + "a" * 41, False), ("hk:1", False), ("HK:", False), ("HK:a_b", False), ("HKG:1", False),
    ("HK:1\n", False),
])
def test_other_entity_ids(value, ok):
    assert ids.is_other_entity(value) is ok
    assert (ids.entity_id_type(value) == "OTHER") is ok
    assert ids.is_org_id(value) is ok and ids.is_person_id(value) is ok


@pytest.mark.parametrize(("check", "value", "ok"), [
    (ids.is_chain_id, "sse", True), (ids.is_chain_id, "szse-2", True), (ids.is_chain_id, "a" * 32, True),
    (ids.is_chain_id, "a" * 33, False), (ids.is_chain_id, "s", False), (ids.is_chain_id, "SSE", False),
    (ids.is_chain_id, "1sse", False), (ids.is_chain_id, "sse\n", False),
    (ids.is_account, "A12345", True), (ids.is_account, "A" * 20, True), (ids.is_account, "A1234", False),
    (ids.is_account, "A" * 21, False), (ids.is_account, "a12345", False),
    (ids.is_security, "600000", True), (ids.is_security, "60000", False),
    (ids.is_security, "６００００0", False), (ids.is_security, 600000, False),
])
def test_chain_account_and_security_formats(check, value, ok):
    assert check(value) is ok


def test_entity_id_type_of_junk_is_none():
    for value in (None, 1, "", "x" * 18, "110105194912310021"):
        assert ids.entity_id_type(value) is None
        assert not ids.is_entity_id(value)


def test_entity_id_problem_explains_the_form_that_is_not_allowed():
    assert ids.entity_id_problem(VALID_USCC[0], ids.ORG_FORMS) is None
    assert "not allowed" in (ids.entity_id_problem(VALID_PRC_ID, ids.ORG_FORMS) or "")
    assert "not allowed" in (ids.entity_id_problem(VALID_USCC[0], ids.PERSON_FORMS) or "")
    assert "check character" in (ids.entity_id_problem("91350100M000100Y44", ids.ORG_FORMS) or "")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_identifiers_are_valid(seed):
    rng = random.Random(seed)
    code = ids.make_uscc(rng)
    assert ids.is_uscc(code), code
    assert independent_uscc_check(code[:17]) == code[17]
    person = ids.make_prc_id(rng)
    assert ids.is_prc_id(person), person
    assert independent_prc_check(person[:17]) == person[17]


def test_make_prc_id_uses_birth_date_and_region():
    code = ids.make_prc_id(random.Random(1), birth=date(1990, 2, 28), region="310115")
    assert code.startswith("31011519900228") and ids.is_prc_id(code)
    with pytest.raises(ValueError):
        ids.make_prc_id(random.Random(1), region="31011")


def test_check_char_helpers_refuse_bad_input():
    with pytest.raises(ValueError):
        ids.uscc_check_char("9135010")
    with pytest.raises(ValueError):
        ids.uscc_check_char("91350100I000100Y4")
    with pytest.raises(ValueError):
        ids.prc_id_check_char("1101051949123100X")


def test_mask_prc_id_keeps_first_six_and_last_four():
    assert ids.mask_prc_id(VALID_PRC_ID) == "110105********002X"
    assert ids.mask_prc_id("HK:1") == "****"
