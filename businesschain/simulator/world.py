"""One simulated securities market, identical for every chain that draws on it for a given seed.

The world holds legal and natural persons with valid identifiers (USCC, PRC ID) and Chinese names,
listed securities on each chain (600xxx/601xxx/603xxx/688xxx on `sse`, 000xxx/002xxx/300xxx on
`szse`, 83xxxx/87xxxx on `sac`), securities firms, fund managers, retail investors with their
accounts, and *control groups*: a natural person who controls a holding group several layers deep

    controller → 控股集团 (H1) → [资产管理 (H1b)] → 投资 (H2) → listed company (L) → subsidiary (S)

with the actual-controller role in every company, managers on the boards, relatives acting in
concert, minority cross holdings between groups and stakes in the securities firms. Each chain
carries its own part of it: the exchanges the registries, roles and accounts of what is listed on
them, 证联链 the registries of the unlisted holding companies and of the securities firms. An entity
that two chains use is registered on both.

Everything is drawn from one `random.Random(seed)` in a fixed order: same seed, same world.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from businesschain.protocol.identifiers import make_prc_id, make_uscc

SSE, SZSE, SAC = "sse", "szse", "sac"
EXCHANGE_CHAINS = (SSE, SZSE)
ALL_CHAINS = (SSE, SZSE, SAC)

TxSpec = tuple[str, dict[str, Any]]
"""A transaction before it is numbered: (type, body)."""

# --- names -----------------------------------------------------------------------------------------

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红飞鹏辉斌宇浩凯健俊帆帅旭宁龙林欢阳建国文晨亮佳"
    "雪琳晶波鑫志海峰婷丹洁颖慧倩欣然睿博思远哲瑞嘉诚泽宏毅琪雯蕾薇晓梅兰松柏"
)
REGIONS = (
    "上海", "北京", "深圳", "广州", "杭州", "南京", "苏州", "武汉", "成都", "重庆", "天津", "西安", "厦门",
    "青岛", "宁波", "合肥", "长沙", "郑州", "珠海", "无锡", "常州", "福州", "济南", "大连", "佛山", "东莞",
)
BRANDS = (
    "华信", "鼎盛", "恒远", "金桥", "瑞丰", "宏达", "中天", "天合", "永兴", "泰安", "嘉润", "德隆",
    "鸿运", "锦程", "天元", "博远", "星辰", "汇通", "晨阳", "华锐", "明阳", "天宇", "金辉", "龙腾",
    "华光", "昌盛", "荣盛", "宏图", "金龙", "鼎信", "同创", "远航", "海纳", "恒通", "瑞祥", "盛达",
    "润泽", "华晟", "新宇", "泰和", "康宁", "祥云", "恒信", "兴邦", "宏远", "嘉禾", "凯瑞", "旭日",
    "华瑞", "东盛", "金盛", "天晟", "瑞康", "博瑞", "正源", "鑫达", "广润", "万通", "恒达", "国辰",
    "安泰", "金源", "启明", "鸿达", "华兴", "信诚", "东华", "中宏", "天成", "永泰", "宏盛", "华源",
    "嘉信", "联创", "众诚", "鼎泰", "润丰", "银丰", "富源", "宝利", "安华", "华通", "卓越", "远景",
    "峰汇", "盛和", "天恒", "金诚", "和信", "达安", "泓源", "智远", "科华", "盈科", "致远", "瑞达",
    "融信", "睿达", "长盈", "久安",
)
INDUSTRIES = (
    ("科技", "科技"), ("电子", "电子"), ("医药", "医药"), ("生物", "生物"), ("能源", "能源"),
    ("新材料", "材料"), ("汽车", "汽车"), ("化工", "化工"), ("机械", "机械"), ("食品", "食品"),
    ("物流", "物流"), ("置业", "置业"), ("建设", "建设"), ("环保", "环保"), ("半导体", "芯片"),
    ("软件", "软件"), ("通信", "通信"), ("电气", "电气"), ("航运", "航运"), ("农业", "农业"),
    ("传媒", "传媒"), ("精密制造", "精密"), ("智能装备", "智能"), ("光伏", "光伏"),
)
_ID_REGIONS = ("110101", "110105", "120101", "310101", "310104", "310115", "320102", "320505", "330106",
               "350203", "370202", "420106", "440106", "440305", "500103", "510104", "610113")


@dataclass(frozen=True, slots=True)
class Party:
    """A legal or natural person as its `entity_register` body describes it."""

    id: str
    kind: str  # "org" | "person"
    name: str
    id_type: str  # "USCC" | "PRC_ID"

    def register_body(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "id_type": self.id_type}


@dataclass(frozen=True, slots=True)
class Listing:
    security: str
    issuer: str
    name: str
    total_shares: int
    chain: str
    price: Decimal  # reference price at the start, 2 decimals


@dataclass(frozen=True, slots=True)
class Account:
    account: str
    holder: str
    broker: str
    chain: str


@dataclass(frozen=True, slots=True)
class Holding:
    """A registry line: `holder` owns `shares` of `issuer`'s `total_shares`, kept on `chain`."""

    issuer: str
    holder: str
    shares: int
    total_shares: int
    chain: str


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    org: str
    person: str
    role: str
    chain: str


@dataclass(frozen=True, slots=True)
class ConcertAgreement:
    issuer: str
    parties: tuple[str, ...]
    chain: str


@dataclass(frozen=True, slots=True)
class ControlGroup:
    """Companies sharing one actual controller, with the relatives acting in concert with them."""

    index: int
    controller: str
    companies: tuple[str, ...]  # top (H1) to bottom (S)
    holdco: str  # H1, 控股集团
    investco: str  # H2, the listed company's direct parent
    listed: str  # L
    subsidiary: str  # S
    relatives: tuple[str, ...]
    managers: tuple[str, ...]  # people with board or executive roles in the group's companies
    home: str  # the exchange chain L is listed on

    @property
    def members(self) -> tuple[str, ...]:
        return (self.controller, *self.relatives, *self.companies)


@dataclass
class World:
    seed: int
    entities: dict[str, Party] = field(default_factory=dict)
    listings: list[Listing] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    holdings: list[Holding] = field(default_factory=list)
    roles: list[RoleAssignment] = field(default_factory=list)
    concerts: list[ConcertAgreement] = field(default_factory=list)
    groups: list[ControlGroup] = field(default_factory=list)
    brokers: list[str] = field(default_factory=list)
    funds: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    retail: list[str] = field(default_factory=list)
    total_shares: dict[str, int] = field(default_factory=dict)
    names: NameBook | None = None

    # --- lookups ----------------------------------------------------------------------------

    def listings_on(self, chain: str) -> list[Listing]:
        return [listing for listing in self.listings if listing.chain == chain]

    def accounts_on(self, chain: str) -> list[Account]:
        return [account for account in self.accounts if account.chain == chain]

    def accounts_of(self, holder: str, chain: str) -> list[Account]:
        return [a for a in self.accounts if a.chain == chain and a.holder == holder]

    def group_accounts(self, group: ControlGroup, chain: str) -> list[Account]:
        members = set(group.members)
        return [a for a in self.accounts if a.chain == chain and a.holder in members]

    def market_accounts(self, chain: str) -> list[Account]:
        """Retail investors' and funds' accounts: the background order flow, outside every group."""
        outside = set(self.retail) | set(self.funds)
        return [a for a in self.accounts if a.chain == chain and a.holder in outside]

    def retail_accounts(self, chain: str) -> list[Account]:
        retail = set(self.retail)
        return [a for a in self.accounts if a.chain == chain and a.holder in retail]

    def fund_accounts(self, chain: str) -> list[Account]:
        funds = set(self.funds)
        return [a for a in self.accounts if a.chain == chain and a.holder in funds]

    def group_of(self, entity_id: str) -> ControlGroup | None:
        for group in self.groups:
            if entity_id in group.members:
                return group
        return None

    # --- what each chain sends first -------------------------------------------------------

    def setup_transactions(self, chain: str, as_of: str) -> list[TxSpec]:
        """The chain's share of the world in dependency order: registrations, listings, accounts,
        registry snapshots (as of `as_of`), roles and concert-party agreements."""
        listings = self.listings_on(chain)
        accounts = self.accounts_on(chain)
        holdings = [h for h in self.holdings if h.chain == chain]
        roles = [r for r in self.roles if r.chain == chain]
        concerts = [c for c in self.concerts if c.chain == chain]
        used: dict[str, None] = {}  # insertion-ordered set

        def use(ids: Iterable[str]) -> None:
            for entity_id in ids:
                used.setdefault(entity_id, None)

        use(listing.issuer for listing in listings)
        for holding in holdings:
            use((holding.issuer, holding.holder))
        for role in roles:
            use((role.org, role.person))
        for concert in concerts:
            use((concert.issuer, *concert.parties))
        for account in accounts:
            use((account.broker, account.holder))
        out: list[TxSpec] = [("entity_register", self.entities[e].register_body()) for e in used]
        out += [("security_listing", {"security": x.security, "issuer": x.issuer, "name": x.name,
                                      "total_shares": str(x.total_shares)}) for x in listings]
        out += [("account_open", {"account": a.account, "holder": a.holder, "broker": a.broker})
                for a in accounts]
        out += [("shareholding", {"issuer": h.issuer, "holder": h.holder, "shares": str(h.shares),
                                  "total_shares": str(h.total_shares), "as_of": as_of}) for h in holdings]
        out += [("role", {"org": r.org, "person": r.person, "role": r.role, "active": True}) for r in roles]
        out += [("concert_party", {"issuer": c.issuer, "parties": list(c.parties), "active": True})
                for c in concerts]
        return out


class NameBook:
    """Unique, plausible identifiers and names, drawn from the world's random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids: set[str] = set()
        self.names: set[str] = set()
        self.brands: set[str] = set()
        self.codes: set[str] = set()
        self.account_numbers: set[tuple[str, str]] = set()

    def person(self, born_from: int = 1950, born_to: int = 2002) -> Party:
        rng = self.rng
        for _ in range(50):
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
            if name not in self.names:
                break
        self.names.add(name)
        while True:
            birth = date(rng.randint(born_from, born_to), rng.randint(1, 12), rng.randint(1, 28))
            person_id = make_prc_id(rng, birth, rng.choice(_ID_REGIONS))
            if person_id not in self.ids:
                self.ids.add(person_id)
                return Party(person_id, "person", name, "PRC_ID")

    def org(self, name: str) -> Party:
        while True:
            org_id = make_uscc(self.rng)
            if org_id not in self.ids:
                self.ids.add(org_id)
                self.names.add(name)
                return Party(org_id, "org", name, "USCC")

    def brand(self, *, unique: bool = True) -> str:
        """A trade name (字号); unique ones until the list runs out, then combined with a region."""
        choices = [b for b in BRANDS if b not in self.brands] if unique else list(BRANDS)
        if not choices:
            choices = list(BRANDS)
        brand = self.rng.choice(choices)
        self.brands.add(brand)
        return brand

    def region(self) -> str:
        return self.rng.choice(REGIONS)

    def security_code(self, chain: str) -> str:
        ranges = {
            SSE: ((600000, 603999), (605000, 605599), (688000, 688799)),
            SZSE: ((1, 1999), (2001, 2999), (300001, 301599)),
            SAC: ((830000, 839999), (870000, 873999)),
        }[chain]
        while True:
            low, high = self.rng.choice(ranges)
            code = f"{self.rng.randint(low, high):06d}"
            if code not in self.codes:
                self.codes.add(code)
                return code

    def account_number(self, chain: str, kind: str) -> str:
        digits = "0123456789"
        while True:
            if chain == SSE:  # 沪市: A + 9 digits for individuals, B88 + 7 for institutions
                number = ("A" if kind == "person" else "B88") + "".join(
                    self.rng.choice(digits) for _ in range(9 if kind == "person" else 7))
            elif chain == SZSE:  # 深市: 00 + 8 digits for individuals, 08 + 8 for institutions
                number = ("00" if kind == "person" else "08") + "".join(
                    self.rng.choice(digits) for _ in range(8))
            else:  # 证联链: ZL + 10 digits
                number = "ZL" + "".join(self.rng.choice(digits) for _ in range(10))
            if (chain, number) not in self.account_numbers:
                self.account_numbers.add((chain, number))
                return number


def _fraction_shares(total: int, fraction: float) -> int:
    return max(1, round(total * fraction))


def build_world(seed: int, *, groups: int = 24, retail: int = 1500, brokers: int = 10,
                funds: int = 8) -> World:
    """The market for `seed`. `retail` sets the number of retail investors (the background flow)."""
    rng = random.Random(seed)
    book = NameBook(rng)
    world = World(seed=seed, names=book)

    def add(party: Party) -> str:
        world.entities[party.id] = party
        return party.id

    # Securities firms, fund managers and state capital companies.
    broker_staff: dict[str, list[str]] = {}
    for _ in range(brokers):
        broker = add(book.org(f"{book.brand()}证券股份有限公司"))
        world.brokers.append(broker)
        world.total_shares[broker] = rng.randint(20, 150) * 100_000_000
        broker_staff[broker] = [add(book.person(1960, 1990)) for _ in range(4)]
    for _ in range(funds):
        world.funds.append(add(book.org(f"{book.brand()}基金管理有限公司")))
    state_regions = rng.sample(REGIONS, 4)
    for region in state_regions:
        suffix = rng.choice(("国有资本投资运营有限公司", "国有资产投资控股有限公司"))
        world.states.append(add(book.org(f"{region}{suffix}")))
    # Independent directors sit on boards of several groups (a background of related parties).
    independents = [add(book.person(1950, 1975)) for _ in range(max(2, groups // 3))]

    # Control groups.
    for index in range(groups):
        home = EXCHANGE_CHAINS[index % 2]
        region, brand = book.region(), book.brand()
        industry, short = rng.choice(INDUSTRIES)
        controller = add(book.person(1950, 1980))
        h1 = add(book.org(f"{region}{brand}控股集团有限公司"))
        middle = [add(book.org(f"{region}{brand}资产管理有限公司"))] if rng.random() < 0.5 else []
        h2 = add(book.org(f"{region}{brand}投资有限公司"))
        listed = add(book.org(f"{region}{brand}{industry}股份有限公司"))
        sub_industry, sub_short = rng.choice(INDUSTRIES)
        sub_listed = index % 3 == 2  # every third group's subsidiary trades on 证联链
        sub_suffix = "股份有限公司" if sub_listed else "有限公司"
        subsidiary = add(book.org(f"{book.region()}{brand}{sub_industry}{sub_suffix}"))
        companies = (h1, *middle, h2, listed, subsidiary)
        for company in companies:
            world.total_shares[company] = (
                rng.randint(3, 60) * 100_000_000 if company == listed
                else rng.randint(5, 100) * 1_000_000 if company != subsidiary or not sub_listed
                else rng.randint(2, 20) * 10_000_000
            )
        relatives = (add(book.person(1955, 1995)),) if rng.random() < 0.4 else ()
        managers = tuple(add(book.person(1960, 1992)) for _ in range(rng.randint(4, 6)))
        group = ControlGroup(index, controller, companies, h1, h2, listed, subsidiary, relatives,
                             managers, home)
        world.groups.append(group)
        world.listings.append(Listing(book.security_code(home), listed, f"{brand}{short}",
                                      world.total_shares[listed], home,
                                      Decimal(rng.randint(300, 8000)) / 100))
        if sub_listed:
            world.listings.append(Listing(book.security_code(SAC), subsidiary, f"{brand}{sub_short}",
                                          world.total_shares[subsidiary], SAC,
                                          Decimal(rng.randint(100, 3000)) / 100))

        # Registries, top down. Unlisted companies' registries are kept on 证联链.
        def hold(issuer: str, holder: str, fraction: float, chain: str) -> None:
            total = world.total_shares[issuer]
            world.holdings.append(Holding(issuer, holder, _fraction_shares(total, fraction), total, chain))

        ladder = [controller, *companies]
        for upper, lower in itertools.pairwise(ladder[:-2]):  # controller down to H2
            stake = rng.uniform(0.55, 0.9) if upper == controller else rng.uniform(0.51, 0.85)
            hold(lower, upper, stake, SAC)
            other = relatives[0] if relatives and upper == controller else rng.choice(world.states)
            hold(lower, other, rng.uniform(0.02, 1 - stake - 0.01), SAC)
        hold(listed, h2, rng.uniform(0.3, 0.55), home)
        if rng.random() < 0.5:
            hold(listed, h1, rng.uniform(0.01, 0.08), home)  # a second path to L
        if rng.random() < 0.5:
            hold(listed, controller, rng.uniform(0.002, 0.03), home)
        for relative in relatives:
            hold(listed, relative, rng.uniform(0.01, 0.04), home)
        for fund in rng.sample(world.funds, min(len(world.funds), rng.randint(1, 3))):
            hold(listed, fund, rng.uniform(0.01, 0.049), home)
        sub_chain = SAC
        hold(subsidiary, listed, rng.uniform(0.6, 1.0) if not sub_listed else rng.uniform(0.51, 0.7),
             sub_chain)

        # Roles: the controller in every company, managers on the boards.
        def role(org: str, person: str, kind: str, listed: str = listed, home: str = home) -> None:
            chain = home if org == listed else SAC
            world.roles.append(RoleAssignment(org, person, kind, chain))

        for company in companies:
            role(company, controller, "actual_controller")
        role(h1, controller, "legal_rep")
        for company in companies:
            board = rng.sample(managers, 3)
            if company != h1:
                role(company, board[0], "legal_rep")
            role(company, board[1], "director")
            role(company, board[2], "executive")
            role(company, rng.choice(managers), "supervisor")
        role(listed, rng.choice(independents), "director")
        sponsor_broker = rng.choice(world.brokers)
        world.roles.append(RoleAssignment(sponsor_broker, rng.choice(broker_staff[sponsor_broker]),
                                          "sponsor_rep", SAC))
        if relatives:
            world.concerts.append(ConcertAgreement(listed, (controller, *relatives), home))

    # Minority cross holdings between groups (below 5%, so not related parties by ownership).
    for group in world.groups:
        if rng.random() < 0.35:
            target = rng.choice([g for g in world.groups if g is not group])
            total = world.total_shares[target.listed]
            world.holdings.append(Holding(target.listed, group.investco,
                                          _fraction_shares(total, rng.uniform(0.005, 0.045)), total,
                                          target.home))

    # Securities firms' registries on 证联链: state capital first, groups with minority stakes (a few
    # groups one stake of 5–9 %, never more than one, so no broker_stake_limit in the background).
    for broker in world.brokers:
        total = world.total_shares[broker]
        world.holdings.append(Holding(broker, rng.choice(world.states),
                                      _fraction_shares(total, rng.uniform(0.3, 0.45)), total, SAC))
        for group in rng.sample(world.groups, min(2, len(world.groups))):
            world.holdings.append(Holding(broker, group.holdco,
                                          _fraction_shares(total, rng.uniform(0.005, 0.04)), total, SAC))
        for staff in broker_staff[broker][:2]:
            world.roles.append(RoleAssignment(broker, staff, "director", SAC))
        world.roles.append(RoleAssignment(broker, broker_staff[broker][2], "legal_rep", SAC))
    for group, broker in zip(world.groups[::4], rng.sample(world.brokers, len(world.brokers)), strict=False):
        total = world.total_shares[broker]
        world.holdings.append(Holding(broker, group.holdco,
                                      _fraction_shares(total, rng.uniform(0.05, 0.09)), total, SAC))

    # Retail investors: accounts on one or two exchanges, some on 证联链, small registry lines.
    for _ in range(retail):
        world.retail.append(add(book.person()))

    # Accounts. Group members trade on every chain; funds too; retail where they opened one.
    def open_account(holder: str, chain: str) -> None:
        kind = world.entities[holder].kind
        world.accounts.append(Account(book.account_number(chain, kind), holder, rng.choice(world.brokers),
                                      chain))

    for group in world.groups:
        for chain in ALL_CHAINS:
            for holder in (group.controller, group.holdco, group.investco):
                open_account(holder, chain)
        open_account(group.listed, group.home)
        open_account(group.subsidiary, SAC)
        for relative in group.relatives:
            open_account(relative, group.home)
    for fund in world.funds:
        for chain in ALL_CHAINS:
            open_account(fund, chain)
            open_account(fund, chain)
    for person in world.retail:
        chains = [c for c, p in ((SSE, 0.7), (SZSE, 0.7), (SAC, 0.25)) if rng.random() < p] or [SSE]
        for chain in chains:
            open_account(person, chain)
    for listing in world.listings:
        for person in rng.sample(world.retail, min(len(world.retail), rng.randint(2, 5))):
            total = listing.total_shares
            world.holdings.append(Holding(listing.issuer, person,
                                          _fraction_shares(total, rng.uniform(0.0005, 0.004)), total,
                                          listing.chain))
    return world
