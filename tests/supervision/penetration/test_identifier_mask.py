"""`penetration.IdentifierMask`: the one rule for person identifiers (API, live events, dashboard)."""

from __future__ import annotations

import random

import pytest

from businesschain.protocol.identifiers import make_prc_id, make_uscc, mask_prc_id
from supervision.penetration import IdentifierMask

PERSON = make_prc_id(random.Random(7))
ORG = make_uscc(random.Random(8))
PASSPORT = "HK:K1234567"


def test_a_prc_id_is_a_person_by_its_form_unless_registered_otherwise():
    mask = IdentifierMask(reveal=False)
    assert mask(PERSON) == mask_prc_id(PERSON) != PERSON
    assert mask(ORG) == ORG and mask(PASSPORT) == PASSPORT  # not known as persons
    mask.know({PASSPORT: "person", PERSON: "org", ORG: "unknown"})
    assert mask(PASSPORT) == mask_prc_id(PASSPORT)
    assert mask(PERSON) == PERSON  # registered as an organisation
    assert mask(ORG) == ORG


def test_text_masks_ids_standing_alone_but_not_digits_inside_hashes_or_longer_numbers():
    mask = IdentifierMask(reveal=False, kinds={PASSPORT: "person"})
    digest = "ab" + PERSON[:17] + "0" * 45  # 64 hex characters that contain the id's digits
    text = f"张三（{PERSON}），shared_person:{PASSPORT}; tx {digest}; 9{PERSON}; {PASSPORT}-2"
    assert mask.text(text) == (f"张三（{mask_prc_id(PERSON)}），shared_person:{mask_prc_id(PASSPORT)}; "
                               f"tx {digest}; 9{PERSON}; {PASSPORT}-2")


def test_json_masks_whole_strings_embedded_ids_and_keys_and_reveal_changes_nothing():
    value = {"buyer": PERSON, "seller": ORG, "positions": {PERSON: 3},
             "reasons": [f"direct_stake:{PERSON}>{ORG}"], "n": 1, "ok": True, "none": None}
    masked = mask_prc_id(PERSON)
    assert IdentifierMask(reveal=False).json(value) == {
        "buyer": masked, "seller": ORG, "positions": {masked: 3},
        "reasons": [f"direct_stake:{masked}>{ORG}"], "n": 1, "ok": True, "none": None,
    }
    assert IdentifierMask(reveal=True).json(value) == value
    assert IdentifierMask(reveal=True).text(PERSON) == PERSON


@pytest.mark.django_db
def test_learn_reads_registered_kinds_in_one_query_and_none_when_revealing(django_assert_num_queries):
    from businesschain.models import Chain, Entity

    chain = Chain.objects.create(id="sse", name="上证链")
    Entity.objects.create(id=PASSPORT, kind="person", name="陈七", id_type="OTHER", chain=chain,
                          tx_id="0" * 64, height=0)
    mask = IdentifierMask(reveal=False)
    with django_assert_num_queries(1):
        mask.learn([PASSPORT, ORG, PERSON, "x" * 65, 5])
    assert mask(PASSPORT) == mask_prc_id(PASSPORT)
    with django_assert_num_queries(0):
        IdentifierMask(reveal=True).learn([PASSPORT])
