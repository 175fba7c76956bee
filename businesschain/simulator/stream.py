"""Each chain's transactions: its share of the world first, then blocks of background activity with
patterns planted at a configurable rate.

Block content depends only on (seed, chain, height, time), so a restarted simulator that continues
at a later height writes new trades rather than replaying old ones, and a test that fixes the seed
and the clock gets the same blocks every time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from businesschain.protocol.times import format_time
from gm.sm3 import sm3_hex

from .patterns import BLOCK_PATTERNS, CENT, PATTERNS, PatternContext, PatternPlan, plant
from .world import Account, Listing, NameBook, TxSpec, World

SETUP_BLOCK_SIZE = 1000
EVIDENCE_TYPES = (("trade_confirmation", "TC"), ("clearing_file", "CF"), ("account_kyc", "KYC"),
                  ("contract", "CT"))


@dataclass(frozen=True, slots=True)
class BlockPlan:
    height: int
    transactions: list[TxSpec]
    planted: list[PatternPlan] = field(default_factory=list)

    @property
    def block_patterns(self) -> list[str]:
        return [p.name for p in self.planted if p.name in BLOCK_PATTERNS]


def lots(rng: random.Random, low: int = 1, high: int = 500) -> int:
    """An order size: 100 × a log-uniform number of lots in [low, high] (many small, a few large)."""
    return 100 * max(low, int(math.exp(rng.uniform(math.log(low), math.log(high)))))


class ChainStream:
    """The transactions one chain sends, block by block."""

    def __init__(self, world: World, chain: str, *, seed: int, block_size: int = 50,
                 pattern_rate: float = 0.1, patterns: Sequence[str] = PATTERNS) -> None:
        self.world = world
        self.chain = chain
        self.seed = seed
        self.block_size = block_size
        self.pattern_rate = pattern_rate
        self.patterns = tuple(patterns)
        self.listings: list[Listing] = world.listings_on(chain)
        self.prices: dict[str, Decimal] = {x.security: x.price for x in self.listings}
        self.market: list[Account] = world.market_accounts(chain)
        retail = set(world.retail)
        self.retail_lines = [h for h in world.holdings if h.chain == chain and h.holder in retail]
        if not self.listings or len(self.market) < 4:
            raise ValueError(f"the world has too little on chain {chain!r} to trade")

    def rng_for(self, height: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.chain}:{height}")

    def setup_blocks(self, as_of: datetime, size: int = SETUP_BLOCK_SIZE) -> list[list[TxSpec]]:
        """The chain's share of the world, in blocks of at most `size` transactions."""
        specs = self.world.setup_transactions(self.chain, format_time(as_of))
        return [specs[i:i + size] for i in range(0, len(specs), size)]

    def choose_patterns(self, rng: random.Random) -> list[str]:
        if self.patterns and self.pattern_rate > 0 and rng.random() < self.pattern_rate:
            return [rng.choice(self.patterns)]
        return []

    def plan_block(self, height: int, at: datetime, *, interval: float = 2.0,
                   patterns: Sequence[str] | None = None) -> BlockPlan:
        """Block `height` made at `at`, its trades spread over the preceding `interval` seconds.
        `patterns` forces which patterns to plant (default: drawn at `pattern_rate`)."""
        rng = self.rng_for(height)
        self._walk_prices(rng)
        names = list(patterns) if patterns is not None else self.choose_patterns(rng)
        context = PatternContext(self.world, self.chain, rng, at, self.prices, NameBook(rng))
        planted = [plant(name, context) for name in names]
        planted_txs = [tx for p in planted for tx in p.transactions]
        count = max(0, self.block_size - len(planted_txs))
        return BlockPlan(height, self.background(rng, at, interval, count) + planted_txs, planted)

    def _walk_prices(self, rng: random.Random) -> None:
        for security, price in self.prices.items():
            moved = Decimal(str(round(float(price) * math.exp(rng.gauss(0, 0.003)), 2)))
            self.prices[security] = max(Decimal("1.00"), moved)

    def background(self, rng: random.Random, at: datetime, interval: float, count: int) -> list[TxSpec]:
        """Ordinary activity: trades between unrelated investors, with now and then a registry
        update, a 存证 record or a periodic report."""
        ages = sorted((rng.uniform(0, interval) for _ in range(count)), reverse=True)
        out: list[TxSpec] = []
        for age in ages:
            draw = rng.random()
            if draw < 0.93:
                out.append(self._trade(rng, at - timedelta(seconds=age)))
            elif draw < 0.96 and self.retail_lines:
                out.append(self._registry_update(rng, at))
            elif draw < 0.99:
                out.append(self._evidence(rng, at))
            else:
                out.append(self._report(rng, at))
        return out

    def trades(self, height: int, at: datetime, count: int, *, interval: float = 2.0) -> list[TxSpec]:
        """`count` background trades only, for block `height` (what the ingestion benchmark sends)."""
        rng = self.rng_for(height)
        self._walk_prices(rng)
        ages = sorted((rng.uniform(0, interval) for _ in range(count)), reverse=True)
        return [self._trade(rng, at - timedelta(seconds=age)) for age in ages]

    def _trade(self, rng: random.Random, executed_at: datetime) -> TxSpec:
        listing = rng.choice(self.listings)
        buyer = rng.choice(self.market)
        seller = rng.choice(self.market)
        while seller.holder == buyer.holder:
            seller = rng.choice(self.market)
        price = self.prices[listing.security] * Decimal(1 + rng.uniform(-0.005, 0.005))
        return ("trade", {
            "security": listing.security, "buyer": buyer.account, "seller": seller.account,
            "quantity": str(lots(rng)), "price": f"{price.quantize(CENT)}",
            "executed_at": format_time(executed_at),
        })

    def _registry_update(self, rng: random.Random, at: datetime) -> TxSpec:
        line = rng.choice(self.retail_lines)
        shares = max(100, int(line.shares * rng.uniform(0.8, 1.2)))
        return ("shareholding", {"issuer": line.issuer, "holder": line.holder, "shares": str(shares),
                                 "total_shares": str(line.total_shares), "as_of": format_time(at)})

    def _evidence(self, rng: random.Random, at: datetime) -> TxSpec:
        business_type, prefix = rng.choice(EVIDENCE_TYPES)
        account = rng.choice(self.market)
        reference = f"{self.chain.upper()}-{prefix}-{at:%Y%m%d}-{rng.randrange(10**8):08d}"
        return ("evidence", {
            "business_type": business_type, "reference": reference,
            "doc_sm3": sm3_hex(f"{reference}|{account.account}|{rng.random()}".encode()),
            "fields": {"account": account.account, "broker": account.broker},
        })

    def _report(self, rng: random.Random, at: datetime) -> TxSpec:
        listing = rng.choice(self.listings)
        return ("disclosure", {
            "issuer": listing.issuer, "holder": listing.issuer, "kind": "periodic",
            "doc_sm3": sm3_hex(f"{listing.security}|report|{format_time(at)}|{rng.random()}".encode()),
            "as_of": format_time(at),
        })
