"""A valid block holding one transaction of every type, and helpers to break it one field at a time."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from businesschain.protocol.builder import make_block, make_transaction

ORG = "91350100M000100Y43"
ORG2 = "91110000600037341L"
PERSON = "11010519491231002X"
FOREIGN = "HK:12345678"
DOC = "ab" * 32
TIME = "2026-11-21T08:00:00.000Z"

BODIES: list[tuple[str, dict[str, Any]]] = [
    ("entity_register", {"id": ORG, "kind": "org", "name": "示例有限公司", "id_type": "USCC"}),          # 0
    ("entity_register", {"id": PERSON, "kind": "person", "name": "张三", "id_type": "PRC_ID"}),        # 1
    ("security_listing", {"security": "600000", "issuer": ORG, "name": "浦发银行",
                          "total_shares": "29352178996"}),                                             # 2
    ("account_open", {"account": "A123456789", "holder": PERSON, "broker": ORG2}),                      # 3
    ("shareholding", {"issuer": ORG, "holder": PERSON, "shares": "1000", "total_shares": "100000",
                      "as_of": TIME}),                                                                  # 4
    ("role", {"org": ORG, "person": PERSON, "role": "director", "active": True}),                       # 5
    ("concert_party", {"issuer": ORG, "parties": [PERSON, ORG2], "active": False}),                     # 6
    ("trade", {"security": "600000", "buyer": "A123456789", "seller": "B987654321", "quantity": "100",
               "price": "12.34", "executed_at": "2026-11-21T08:00:01.250Z"}),                          # 7
    ("transfer", {"security": "600000", "from": "A123456789", "to": "B987654321", "quantity": "5",
                  "reason": "gift"}),                                                                   # 8
    ("disclosure", {"issuer": ORG, "holder": ORG2, "kind": "shareholding_change", "doc_sm3": DOC,
                    "as_of": TIME}),                                                                    # 9
    ("evidence", {"business_type": "contract", "reference": "C-1", "doc_sm3": DOC,
                  "fields": {"party": "甲", "amount": "1.00"}}),                                        # 10
    ("evidence", {"business_type": "contract", "reference": "C-2", "doc_sm3": DOC}),                    # 11
]
INDEX = {"entity_register": 0, "security_listing": 2, "account_open": 3, "shareholding": 4, "role": 5,
         "concert_party": 6, "trade": 7, "transfer": 8, "disclosure": 9, "evidence": 10}


def valid_block(height: int = 1, prev_hash: str = "0" * 64) -> dict[str, Any]:
    txs = [make_transaction(t, f"sse-{height}-{i}", body) for i, (t, body) in enumerate(BODIES)]
    return make_block("sse", height, prev_hash, datetime(2026, 11, 21, 8, 0, 2, 500000, tzinfo=UTC), txs,
                      lambda digest: [{"node": "sse-node-1", "sig": "00" * 64}])


DELETE = object()


def mutated(obj: Any, pointer: str, value: Any = DELETE) -> Any:
    """A deep copy of `obj` with the member at `pointer` replaced (or deleted)."""
    out = copy.deepcopy(obj)
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    if not parts:
        return value
    target = out
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last: Any = int(parts[-1]) if isinstance(target, list) else parts[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return out
