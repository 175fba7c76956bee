"""Identifiers of ECP/1 §2: chains, entities (USCC, PRC ID, other), accounts and securities.

Entity ids carry check characters; an id whose check character is wrong is invalid input.

- 统一社会信用代码 (USCC, GB 32100-2015): 18 characters from `USCC_CHARSET`; character 18 is
  `31 − (Σ value·weight mod 31)` (31 → 0). Characters 9–17 are the organisation code of
  GB 11714-1997 whose ninth character is itself a check character (`11 − (Σ mod 11)`, 10 → X,
  11 → 0). ECP/1 §2 names only the GB 32100 check character, so `is_uscc` checks character 18
  and, only if `CHECK_EMBEDDED_ORG_CODE` is turned on, the embedded one too: an independent client
  built from the spec must not be refused for an id the spec calls valid.
- 居民身份证号码 (GB 11643-1999): 17 digits (6 region, 8 birth date, 3 sequence) and an
  ISO 7064 MOD 11-2 check character from "10X98765432".

The generators (`make_uscc`, `make_prc_id`) take a `random.Random` so the simulator and the tests
are reproducible; they are not for anything secret.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from functools import lru_cache
from typing import Final, Literal

EntityIdType = Literal["USCC", "PRC_ID", "OTHER"]

#: Whether `is_uscc` also checks the GB 11714 check character embedded at positions 9–17.
CHECK_EMBEDDED_ORG_CODE: Final = False

USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE: Final = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_CODE_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CODE_VALUE: Final = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_PRC_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PRC_CHECK: Final = "10X98765432"

_CHAIN_RE: Final = re.compile(r"[a-z][a-z0-9-]{1,31}")
_USCC_RE: Final = re.compile(r"[0-9A-HJ-NP-RTUWXY]{18}")
_PRC_RE: Final = re.compile(r"[0-9]{17}[0-9X]")
_OTHER_RE: Final = re.compile(r"[A-Z]{2}:[A-Za-z0-9-]{1,40}")
_ACCOUNT_RE: Final = re.compile(r"[A-Z0-9]{6,20}")
_SECURITY_RE: Final = re.compile(r"[0-9]{6}")


def is_chain_id(value: object) -> bool:
    return isinstance(value, str) and _CHAIN_RE.fullmatch(value) is not None


def is_account(value: object) -> bool:
    return isinstance(value, str) and _ACCOUNT_RE.fullmatch(value) is not None


def is_security(value: object) -> bool:
    return isinstance(value, str) and _SECURITY_RE.fullmatch(value) is not None


def is_other_entity(value: object) -> bool:
    return isinstance(value, str) and _OTHER_RE.fullmatch(value) is not None


# --- USCC (GB 32100-2015) and its embedded organisation code (GB 11714-1997) ---------------------

def uscc_check_char(first17: str) -> str:
    """The 18th character of a USCC whose first 17 characters are `first17`."""
    if len(first17) != 17:
        raise ValueError("a USCC check character is computed over exactly 17 characters")
    try:
        total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not a USCC character") from None
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The 9th character of a GB 11714 organisation code whose first 8 characters are `first8`."""
    if len(first8) != 8:
        raise ValueError("an organisation-code check character is computed over exactly 8 characters")
    try:
        total = sum(_ORG_CODE_VALUE[c] * w for c, w in zip(first8, _ORG_CODE_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} is not an organisation-code character") from None
    check = 11 - total % 11
    return "0" if check == 11 else "X" if check == 10 else str(check)


def uscc_problem(value: object) -> str | None:
    """Why `value` is not a USCC, or None when it is one."""
    if not isinstance(value, str):
        return "a USCC is a string"
    if _USCC_RE.fullmatch(value) is None:
        return "a USCC is 18 characters from 0-9 and A-Y without I, O, S, V, Z"
    if CHECK_EMBEDDED_ORG_CODE and org_code_check_char(value[8:16]) != value[16]:
        return "the organisation code in USCC positions 9-17 has a wrong check character"
    if uscc_check_char(value[:17]) != value[17]:
        return "the USCC check character (position 18) is wrong"
    return None


def is_uscc(value: object) -> bool:
    return uscc_problem(value) is None


# --- PRC resident identity card number (GB 11643-1999) -------------------------------------------

def prc_id_check_char(first17: str) -> str:
    """The 18th character of a PRC ID whose first 17 digits are `first17` (ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("a PRC ID check character is computed over exactly 17 ASCII digits")
    return _PRC_CHECK[sum(int(c) * w for c, w in zip(first17, _PRC_WEIGHTS, strict=True)) % 11]


def _birth_date(value: str) -> date | None:
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def prc_id_problem(value: object) -> str | None:
    """Why `value` is not a PRC ID number, or None when it is one."""
    if not isinstance(value, str):
        return "a PRC ID is a string"
    if _PRC_RE.fullmatch(value) is None:
        return "a PRC ID is 17 digits and a check character (0-9 or X)"
    if _birth_date(value) is None:
        return "a PRC ID has a real birth date YYYYMMDD at positions 7-14"
    if prc_id_check_char(value[:17]) != value[17]:
        return "the PRC ID check character (position 18) is wrong"
    return None


def is_prc_id(value: object) -> bool:
    return prc_id_problem(value) is None


# --- entity ids -----------------------------------------------------------------------------------

@lru_cache(maxsize=1 << 16)
def _entity_id_type(value: str) -> EntityIdType | None:
    if len(value) == 18:
        if is_uscc(value):
            return "USCC"
        if is_prc_id(value):
            return "PRC_ID"
        return None
    return "OTHER" if _OTHER_RE.fullmatch(value) is not None else None


def entity_id_type(value: object) -> EntityIdType | None:
    """The form of an entity id, or None when it is not a valid one.

    An 18-digit string can in principle pass both the USCC and the PRC ID checks; it is then
    reported as "USCC". Use `is_uscc` / `is_prc_id` to test a declared form.
    """
    if not isinstance(value, str):
        return None
    return _entity_id_type(value)


def is_entity_id(value: object) -> bool:
    return entity_id_type(value) is not None


def is_org_id(value: object) -> bool:
    """An id an organisation can have: a USCC, or a foreign/other registry number."""
    return isinstance(value, str) and (is_uscc(value) or _OTHER_RE.fullmatch(value) is not None)


def is_person_id(value: object) -> bool:
    """An id a natural person can have: a PRC ID number, or a foreign/other document number."""
    return isinstance(value, str) and (is_prc_id(value) or _OTHER_RE.fullmatch(value) is not None)


ALL_ENTITY_FORMS: Final = frozenset(("USCC", "PRC_ID", "OTHER"))
ORG_FORMS: Final = frozenset(("USCC", "OTHER"))
PERSON_FORMS: Final = frozenset(("PRC_ID", "OTHER"))
_FORM_NAMES: Final = {"USCC": "a USCC", "PRC_ID": "a PRC ID number", "OTHER": "an id CC:registry-number"}


def _names(forms: frozenset[str]) -> str:
    return " or ".join(_FORM_NAMES[f] for f in ("USCC", "PRC_ID", "OTHER") if f in forms)


def entity_id_problem(value: object, allowed: frozenset[str] = ALL_ENTITY_FORMS) -> str | None:
    """Why `value` is not an entity id of one of the `allowed` forms, or None when it is."""
    if not isinstance(value, str):
        return f"expected {_names(allowed)} (a string)"
    form = entity_id_type(value)
    if form is not None:
        if form in allowed or ("PRC_ID" in allowed and form == "USCC" and is_prc_id(value)):
            return None
        return f"{_FORM_NAMES[form]} is not allowed here; expected {_names(allowed)}"
    if len(value) == 18:
        all_digits = _PRC_RE.fullmatch(value) is not None
        if "PRC_ID" in allowed and all_digits:
            if "USCC" in allowed:
                return "neither a valid USCC nor a valid PRC ID number (wrong check character?)"
            return prc_id_problem(value)
        if "USCC" in allowed and _USCC_RE.fullmatch(value) is not None:
            return uscc_problem(value)
    return f"expected {_names(allowed)}"


def mask_prc_id(value: str) -> str:
    """`110101********123X`: the first 6 and last 4 characters, for people who may not see ids."""
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


# --- generators -----------------------------------------------------------------------------------

_USCC_PREFIXES: Final = ("91", "91", "91", "91", "92", "93", "11", "12", "51", "52", "53", "Y1")
_REGIONS: Final = ("110000", "110105", "110108", "120000", "310000", "310115", "320500", "330100",
                   "350100", "370200", "420100", "440100", "440300", "500000", "510100", "610100")
_ORG_BODY_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def make_uscc(rng: random.Random) -> str:
    """A random, well-formed USCC (valid embedded organisation code and check character)."""
    prefix = rng.choice(_USCC_PREFIXES)
    region = rng.choice(_REGIONS)
    if rng.random() < 0.5:   # codes issued since 2015 mostly start with "MA"
        body = "MA" + "".join(rng.choice(_ORG_BODY_CHARS) for _ in range(6))
    else:
        body = "".join(rng.choice("0123456789") for _ in range(8))
    first17 = prefix + region + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def make_prc_id(rng: random.Random, birth: date | None = None, region: str = "110101") -> str:
    """A random, well-formed PRC ID number for someone born on `birth` (default: 1940–2005)."""
    if len(region) != 6 or not region.isdigit():
        raise ValueError("region is a 6-digit administrative division code")
    if birth is None:
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(66 * 365))
    first17 = f"{region}{birth.year:04d}{birth.month:02d}{birth.day:02d}{rng.randrange(1000):03d}"
    return first17 + prc_id_check_char(first17)
