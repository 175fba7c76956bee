"""`simulate_chains`: drive 上证链 (sse), 深证链 (szse) and 证联链 (sac) as HTTP clients of our API.

Each chain has four SM2 consensus nodes and quorum three. The command registers the chains it does
not know (through `businesschain.registry`, so it must run against the server's database), keeps
their node keys and API keys in `var/simulator/<chain>.json` (mode 0600), and on restart asks the
server for the head (`GET chains/{id}`) and continues from it. When the keys are lost but the chain
exists, it rotates the chain's API key and installs four fresh nodes as a new node-set version.

A chain first sends its share of the world (entities, listings, accounts, registries, roles,
concert parties) in blocks of up to 1,000 transactions, then one block every `1/--rate` seconds of
`--block-size` transactions, planting a pattern with probability `--pattern-rate` per block. Each
planted pattern is logged with the answer it got. `--once` sends the setup and then, per chain, one
block per selected pattern (each planting it) and exits: what the tests use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from businesschain.models import Chain
from businesschain.registry import (
    chain_nodes_change,
    chain_register,
    chain_token_rotate,
    current_node_set,
    token_lookup,
)
from businesschain.simulator import CHAIN_NAMES
from businesschain.simulator.chain import (
    QUORUM,
    SimulatedChain,
    Submission,
    generate_node_keys,
    keys_from_json,
    keys_to_json,
)
from businesschain.simulator.client import Answer, ChainClient
from businesschain.simulator.patterns import PATTERNS, PatternPlan, parse_patterns
from businesschain.simulator.stream import BlockPlan, ChainStream
from businesschain.simulator.world import build_world
from gm import sm2


@dataclass
class ChainCredentials:
    chain_id: str
    api_key: str
    keys: dict[str, sm2.SM2PrivateKey]
    setup_done: bool = False
    path: Path | None = None

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"chain": self.chain_id, "api_key": self.api_key, "nodes": keys_to_json(self.keys),
                "setup_done": self.setup_done}
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)


def load_credentials(chain_id: str, state_dir: Path) -> tuple[ChainCredentials, str]:
    """The chain's keys, registering the chain or re-keying it as needed; and what was done."""
    path = state_dir / f"{chain_id}.json"
    stored: dict[str, Any] | None = None
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
    if not Chain.objects.filter(id=chain_id).exists():
        keys = generate_node_keys(chain_id)
        issued = chain_register(chain_id=chain_id, name=CHAIN_NAMES[chain_id],
                                nodes={n: k.public_key().to_hex() for n, k in keys.items()},
                                quorum=QUORUM)
        credentials = ChainCredentials(chain_id, issued.key, keys, path=path)
        credentials.save()
        return credentials, "registered"
    action = "resumed"
    if stored is not None:
        keys = keys_from_json(stored["nodes"])
        credentials = ChainCredentials(chain_id, stored["api_key"], keys,
                                       setup_done=bool(stored.get("setup_done")), path=path)
    else:
        keys = generate_node_keys(chain_id)
        credentials = ChainCredentials(chain_id, "", keys, path=path)
        action = "re-keyed (state file lost)"
    token = token_lookup(credentials.api_key) if credentials.api_key else None
    if token is None or token.chain_id != chain_id:
        credentials.api_key = chain_token_rotate(chain_id=chain_id).key
        if action == "resumed":
            action = "resumed with a rotated API key"
    chain = Chain.objects.get(id=chain_id)
    registered = {n.node_id: n.public_key for n in current_node_set(chain).nodes.all()}
    ours = {n: k.public_key().to_hex() for n, k in keys.items()}
    if registered != ours:
        node_set = chain_nodes_change(chain_id=chain_id, remove=list(registered), add=ours, quorum=QUORUM)
        action += f", node set v{node_set.version} from height {node_set.valid_from_height}"
    credentials.save()
    return credentials, action


@dataclass
class Tally:
    blocks: int = 0
    transactions: int = 0
    planted: int = 0
    unexpected: int = 0
    height: int = -1


@dataclass
class Reporter:
    """Pattern lines as they happen, and one quiet progress line."""

    write: Any
    tallies: dict[str, Tally] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tty: bool = False
    last_progress: float = 0.0

    def line(self, chain: str, height: int, text: str) -> None:
        stamp = datetime.now().astimezone().strftime("%H:%M:%S")
        with self.lock:
            prefix = "\r\033[K" if self.tty else ""
            self.write(f"{prefix}{stamp} [{chain} #{height}] {text}")

    def progress(self, force: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            if not force and now - self.last_progress < (1.0 if self.tty else 30.0):
                return
            self.last_progress = now
            heads = " ".join(f"{c}#{t.height}" for c, t in self.tallies.items())
            blocks = sum(t.blocks for t in self.tallies.values())
            txs = sum(t.transactions for t in self.tallies.values())
            planted = sum(t.planted for t in self.tallies.values())
            unexpected = sum(t.unexpected for t in self.tallies.values())
            text = (f"simulate_chains: {heads} | {blocks} blocks, {txs} tx, {planted} patterns, "
                    f"{unexpected} unexpected answers")
            if self.tty:
                sys.stdout.write("\r\033[K" + text)
                sys.stdout.flush()
            else:
                self.write(text)


def _answer_text(answer: Answer | None) -> str:
    if answer is None:
        return "no answer"
    if answer.status < 400:
        return f"{answer.status} {'accepted' if answer.data.get('accepted') else 'duplicate'}"
    return f"{answer.status} {answer.code}"


class ChainRunner:
    """One chain's loop: plan, build, sign, POST, and move the head on acceptance."""

    def __init__(self, *, stream: ChainStream, chain: SimulatedChain, client: ChainClient,
                 credentials: ChainCredentials, reporter: Reporter, interval: float) -> None:
        self.stream = stream
        self.chain = chain
        self.client = client
        self.credentials = credentials
        self.reporter = reporter
        self.interval = interval
        self.tally = reporter.tallies.setdefault(chain.chain_id, Tally())

    def sync(self) -> None:
        answer = self.client.chain()
        if answer.status != 200:
            raise CommandError(f"GET chains/{self.chain.chain_id} answered {answer.status}: {answer.data}")
        self.chain.resync(height=int(answer.data["height"]), head_hash=answer.data.get("head_hash"))
        self.tally.height = self.chain.height

    def setup(self) -> None:
        if self.credentials.setup_done:
            return
        for specs in self.stream.setup_blocks(datetime.now(UTC)):
            block = self.chain.build_block(specs, datetime.now(UTC))
            answer = self._post(Submission(block, 201, None, "setup", commit=True))
            if answer is None or answer.status >= 400:
                raise CommandError(f"{self.chain.chain_id}: setup block refused: {_answer_text(answer)} "
                                   f"{answer.data.get('detail') if answer else ''}")
        self.credentials.setup_done = True
        self.credentials.save()
        self.reporter.line(self.chain.chain_id, self.chain.height, "world registered")

    def step(self, patterns: Sequence[str] | None = None) -> None:
        """One block, with the patterns drawn (or forced), each logged with its answer."""
        at = datetime.now(UTC)
        plan: BlockPlan = self.stream.plan_block(self.chain.next_height, at, interval=self.interval,
                                                 patterns=patterns)
        block = self.chain.build_block(plan.transactions, at)
        answers: dict[str, Answer | None] = {}
        expected: dict[str, bool] = {}
        for submission in self.chain.submissions(block, plan.block_patterns):
            answer = self._post(submission)
            answers[submission.label] = answer
            expected[submission.label] = answer is not None and (
                answer.status in (200, 201) if submission.commit
                else (answer.status, answer.code) == (submission.expect_status, submission.expect_code)
            )
        for planted in plan.planted:
            self._log_pattern(plan.height, planted, answers, expected)

    def _log_pattern(self, height: int, planted: PatternPlan, answers: dict[str, Answer | None],
                     expected: dict[str, bool]) -> None:
        label = planted.name if planted.name in ("forged_signature", "fork") else "block"
        self.tally.planted += 1
        if label not in answers:
            self.reporter.line(self.chain.chain_id, height, f"{planted.summary}: skipped "
                               "(no accepted block to fork)")
            return
        verdict = "as expected" if expected.get(label) else "UNEXPECTED"
        extra = ""
        if planted.name == "forged_signature" and "block" in answers:
            extra = f"; resent as signed: {_answer_text(answers['block'])}"
        self.reporter.line(self.chain.chain_id, height,
                           f"{planted.summary} → {_answer_text(answers[label])} ({verdict}){extra}")

    def _post(self, submission: Submission) -> Answer | None:
        try:
            answer = self.client.post_block(submission.block)
        except httpx.HTTPError as error:
            self.tally.unexpected += 1
            self.reporter.line(self.chain.chain_id, self.chain.next_height, f"POST failed: {error!r}")
            self._resync_quietly()
            return None
        if submission.commit:
            if answer.status in (200, 201):
                self.chain.accept(submission.block)
                self.tally.blocks += 1
                self.tally.transactions += len(submission.block["transactions"])
                self.tally.height = self.chain.height
            else:
                self.tally.unexpected += 1
                self.reporter.line(self.chain.chain_id, self.chain.next_height,
                                   f"block refused: {_answer_text(answer)}: {answer.data.get('detail')}")
                self._resync_quietly()
        elif answer.status != submission.expect_status or answer.code != submission.expect_code:
            self.tally.unexpected += 1
        return answer

    def _resync_quietly(self) -> None:
        with contextlib.suppress(httpx.HTTPError, CommandError):
            self.sync()

    def run(self, *, stop: threading.Event, deadline: float | None) -> None:
        """Blocks every `interval` seconds until `stop` or the deadline; survives a server restart."""
        next_at = time.monotonic()
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                self.step()
            except httpx.HTTPError as error:
                self.reporter.line(self.chain.chain_id, self.chain.next_height,
                                   f"server unreachable: {error!r}")
                stop.wait(2.0)
                self._resync_quietly()
            self.reporter.progress()
            next_at = max(next_at + self.interval, time.monotonic() - self.interval)
            stop.wait(max(0.0, next_at - time.monotonic()))


class Command(BaseCommand):
    help = "Drive the simulated business chains sse, szse and sac against a running server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
        parser.add_argument("--chains", default="sse,szse,sac", help="comma list of sse, szse, sac")
        parser.add_argument("--rate", type=float, default=0.5, help="blocks per second per chain")
        parser.add_argument("--block-size", type=int, default=50, help="transactions per block")
        parser.add_argument("--duration", type=float, default=0, help="seconds to run (0 = forever)")
        parser.add_argument("--seed", type=int, default=2026, help="the world and the streams")
        parser.add_argument("--pattern-rate", type=float, default=0.1,
                            help="probability per block of planting one pattern")
        parser.add_argument("--patterns", default="", help=f"comma list from {', '.join(PATTERNS)}")
        parser.add_argument("--once", action="store_true",
                            help="setup, then one block per selected pattern per chain, then exit")
        parser.add_argument("--retail", type=int, default=1500, help="retail investors in the world")
        parser.add_argument("--state-dir", default="", help="where keys are kept (var/simulator)")

    def handle(self, *args: Any, **options: Any) -> None:
        chains = [c.strip() for c in options["chains"].split(",") if c.strip()]
        unknown = [c for c in chains if c not in CHAIN_NAMES]
        if unknown or not chains:
            raise CommandError(f"--chains takes a comma list of {', '.join(CHAIN_NAMES)}")
        if options["rate"] <= 0 or options["block_size"] < 1:
            raise CommandError("--rate must be positive and --block-size at least 1")
        try:
            patterns = parse_patterns(options["patterns"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        state_dir = Path(options["state_dir"] or settings.VAR_DIR / "simulator")
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
        reporter = Reporter(write=self.stdout.write, tty=self.stdout.isatty() and not options["once"])
        world = build_world(options["seed"], retail=options["retail"])
        interval = 1.0 / options["rate"]

        runners: list[ChainRunner] = []
        for chain_id in chains:
            credentials, action = load_credentials(chain_id, state_dir)
            chain = SimulatedChain(chain_id, credentials.keys, rng=random.Random())
            client = ChainClient(options["url"], chain_id, credentials.api_key)
            stream = ChainStream(world, chain_id, seed=options["seed"], block_size=options["block_size"],
                                 pattern_rate=options["pattern_rate"], patterns=patterns)
            runner = ChainRunner(stream=stream, chain=chain, client=client, credentials=credentials,
                                 reporter=reporter, interval=interval)
            runners.append(runner)
            try:
                runner.sync()
            except httpx.HTTPError as error:
                raise CommandError(f"cannot reach {options['url']}: {error!r}") from error
            reporter.line(chain_id, chain.height, f"{CHAIN_NAMES[chain_id]} {action}; next height "
                          f"{chain.next_height}")
        connections.close_all()  # the loop talks HTTP only

        try:
            if options["once"]:
                self._once(runners, patterns if options["pattern_rate"] > 0 else ())
            else:
                self._forever(runners, options["duration"])
        finally:
            for runner in runners:
                runner.client.close()
            reporter.progress(force=True)
            if reporter.tty:
                sys.stdout.write("\n")

    def _once(self, runners: Sequence[ChainRunner], patterns: Sequence[str]) -> None:
        for runner in runners:
            runner.setup()
        for runner in runners:
            for forced in [[name] for name in patterns] or [[]]:
                runner.step(forced)

    def _forever(self, runners: Sequence[ChainRunner], duration: float) -> None:
        stop = threading.Event()
        deadline = time.monotonic() + duration if duration > 0 else None
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        errors: list[BaseException] = []

        def work(runner: ChainRunner) -> None:
            try:
                runner.setup()
                runner.run(stop=stop, deadline=deadline)
            except BaseException as error:  # reported by the main thread
                errors.append(error)
                stop.set()

        threads = [threading.Thread(target=work, args=(r,), name=f"sim-{r.chain.chain_id}", daemon=True)
                   for r in runners]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(0.5)
        except KeyboardInterrupt:
            stop.set()
            for thread in threads:
                thread.join(10)
        if errors:
            raise CommandError(f"simulator stopped: {errors[0]}") from errors[0]
