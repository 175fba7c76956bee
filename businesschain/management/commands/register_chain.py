"""`register_chain`: register a business chain, rotate its key, or change its node set (ECP/1 §5)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from businesschain.errors import DomainError
from businesschain.registry import chain_nodes_change, chain_register, chain_token_rotate


def _node(value: str) -> tuple[str, str]:
    node_id, sep, key = value.partition("=")
    if not sep or not node_id or not key:
        raise CommandError(f"--node/--add-node takes NODE_ID=PUBLIC_KEY, got {value!r}")
    if key.startswith("@"):  # a PEM file
        with open(key[1:], encoding="utf-8") as handle:
            key = handle.read()
    return node_id, key


class Command(BaseCommand):
    help = ("Register a business chain and print its API key; or, for a registered chain, "
            "--rotate-token / --add-node / --remove-node / --quorum.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", required=True, help="chain id, e.g. sse")
        parser.add_argument("--name", help="display name, e.g. 上证链 (registration)")
        parser.add_argument("--node", action="append", default=[], metavar="ID=KEY",
                            help="consensus node and SM2 public key (hex, or @file.pem)")
        parser.add_argument("--quorum", type=int, help="signatures needed per block")
        parser.add_argument("--rotate-token", action="store_true", help="revoke keys, issue a new one")
        parser.add_argument("--add-node", action="append", default=[], metavar="ID=KEY")
        parser.add_argument("--remove-node", action="append", default=[], metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        chain_id = options["id"]
        changing = bool(
            options["rotate_token"] or options["add_node"] or options["remove_node"]
            or (options["quorum"] is not None and not options["node"] and not options["name"])
        )
        try:
            if not changing:
                if not options["name"] or not options["node"] or options["quorum"] is None:
                    raise CommandError("registration needs --name, at least one --node and --quorum")
                issued = chain_register(chain_id=chain_id, name=options["name"],
                                        nodes=dict(_node(n) for n in options["node"]),
                                        quorum=options["quorum"])
                self.stdout.write(f"Registered chain {chain_id}. API key (shown once):")
                self.stdout.write(issued.key)
                return
            if options["add_node"] or options["remove_node"] or options["quorum"] is not None:
                node_set = chain_nodes_change(
                    chain_id=chain_id, add=dict(_node(n) for n in options["add_node"]),
                    remove=options["remove_node"], quorum=options["quorum"],
                )
                self.stdout.write(f"Chain {chain_id}: node set v{node_set.version} "
                                  f"(quorum {node_set.quorum}) valid from height "
                                  f"{node_set.valid_from_height}.")
            if options["rotate_token"]:
                issued = chain_token_rotate(chain_id=chain_id)
                self.stdout.write(f"Chain {chain_id}: previous keys revoked. New API key (shown once):")
                self.stdout.write(issued.key)
        except DomainError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
