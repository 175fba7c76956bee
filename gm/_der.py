"""A small, strict DER encoder and decoder: just what SM2 keys, signatures and X.509 need.

Strict on input (definite, minimal lengths; minimal integers; no trailing bytes) because every
DER structure here is either signed or compared byte for byte: two encodings of one value would
be a malleability hole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31


class DERError(ValueError):
    """Input that is not strict DER, or not the structure expected."""


# --- encoding -------------------------------------------------------------------------------

def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def integer(n: int) -> bytes:
    # Two's complement, minimal: one extra byte so a set top bit does not read as negative.
    size = (n + (n < 0)).bit_length() // 8 + 1
    return tlv(INTEGER, n.to_bytes(size, "big", signed=True))


def boolean(value: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if value else b"\x00")


def null() -> bytes:
    return b"\x05\x00"


def octet_string(data: bytes) -> bytes:
    return tlv(OCTET_STRING, data)


def bit_string(data: bytes, unused_bits: int = 0) -> bytes:
    return tlv(BIT_STRING, bytes((unused_bits,)) + data)


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise DERError(f"bad OID {dotted!r}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(OID, bytes(body))


def utf8_string(text: str) -> bytes:
    return tlv(UTF8_STRING, text.encode("utf-8"))


def printable_string(text: str) -> bytes:
    return tlv(PRINTABLE_STRING, text.encode("ascii"))


def ia5_string(text: str) -> bytes:
    return tlv(IA5_STRING, text.encode("ascii"))


def sequence(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    # DER orders SET OF members by their encodings.
    return tlv(SET, b"".join(sorted(parts)))


def explicit(number: int, content: bytes) -> bytes:
    return tlv(0xA0 | number, content)


def time(moment: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    if moment.tzinfo is None:
        raise DERError("certificate times must be timezone-aware")
    moment = moment.astimezone(UTC)
    if 1950 <= moment.year < 2050:
        return tlv(UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(GENERALIZED_TIME, f"{moment.year:04d}{moment.strftime('%m%d%H%M%S')}Z".encode())


# --- decoding -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Element:
    """One decoded TLV: `tag` byte, `content` octets and the `raw` encoding they came from."""

    tag: int
    content: bytes
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Element]:
        if not self.constructed:
            raise DERError(f"tag 0x{self.tag:02x} is primitive")
        return parse_all(self.content)

    def expect(self, tag: int) -> Element:
        if self.tag != tag:
            raise DERError(f"expected tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self

    def as_int(self) -> int:
        self.expect(INTEGER)
        c = self.content
        if not c or (len(c) > 1 and ((c[0] == 0 and c[1] < 0x80) or (c[0] == 0xFF and c[1] >= 0x80))):
            raise DERError("non-minimal INTEGER")
        return int.from_bytes(c, "big", signed=True)

    def as_octets(self) -> bytes:
        return self.expect(OCTET_STRING).content

    def as_bits(self) -> bytes:
        """A BIT STRING holding whole octets (keys, signatures)."""
        c = self.expect(BIT_STRING).content
        if not c or c[0] != 0:
            raise DERError("BIT STRING with unused bits")
        return c[1:]

    def as_bool(self) -> bool:
        c = self.expect(BOOLEAN).content
        if c not in (b"\x00", b"\xff"):
            raise DERError("non-DER BOOLEAN")
        return c == b"\xff"

    def as_oid(self) -> str:
        c = self.expect(OID).content
        if not c or c[-1] & 0x80:
            raise DERError("truncated OID")
        arcs: list[int] = []
        value = 0
        for i, byte in enumerate(c):
            if value == 0 and byte == 0x80 and (i == 0 or not c[i - 1] & 0x80):
                raise DERError("non-minimal OID arc")
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        first = arcs[0]
        head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
        return ".".join(str(a) for a in head + arcs[1:])

    def as_text(self) -> str:
        if self.tag == BMP_STRING:
            return self.content.decode("utf-16-be")
        if self.tag in (UTF8_STRING, PRINTABLE_STRING, IA5_STRING, T61_STRING):
            return self.content.decode("utf-8" if self.tag == UTF8_STRING else "latin-1")
        raise DERError(f"tag 0x{self.tag:02x} is not a string type")

    def as_time(self) -> datetime:
        text = self.content.decode("ascii", "replace")
        if self.tag == UTC_TIME and len(text) == 13 and text.endswith("Z"):
            parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
            year = parsed.year if parsed.year < 2050 else parsed.year - 100
            return parsed.replace(year=year, tzinfo=UTC)
        if self.tag == GENERALIZED_TIME and len(text) == 15 and text.endswith("Z"):
            return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
        raise DERError(f"unsupported time encoding {text!r}")


def _read(data: bytes, pos: int) -> tuple[Element, int]:
    if pos + 2 > len(data):
        raise DERError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("high tag numbers are not used here")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DERError("indefinite or oversized length")
        if pos + count > len(data):
            raise DERError("truncated DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise DERError("non-minimal length")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("truncated DER content")
    start = pos - 2 - (0 if first < 0x80 else first & 0x7F)
    return Element(tag, data[pos:end], data[start:end]), end


def parse(data: bytes) -> Element:
    """Exactly one DER element, with nothing after it."""
    element, end = _read(bytes(data), 0)
    if end != len(data):
        raise DERError("trailing bytes after DER element")
    return element


def parse_all(data: bytes) -> list[Element]:
    items: list[Element] = []
    pos = 0
    while pos < len(data):
        element, pos = _read(data, pos)
        items.append(element)
    return items


def expect_children(element: Element, tags: Iterable[int]) -> list[Element]:
    """The children of a SEQUENCE, checked against the tags expected in order."""
    kids = element.expect(SEQUENCE).children()
    wanted = list(tags)
    if len(kids) != len(wanted):
        raise DERError(f"expected {len(wanted)} elements, found {len(kids)}")
    for kid, tag in zip(kids, wanted, strict=True):
        kid.expect(tag)
    return kids
