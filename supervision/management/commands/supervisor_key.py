"""`supervisor_key`: show or rotate the supervisor's SM2 key (ECP/1 §6)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from supervision import keys


class Command(BaseCommand):
    help = "Show the supervisor's current key, or --rotate it (the old key file is kept as a backup)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rotate", action="store_true", help="generate, write and register a new key")
        parser.add_argument("--json", action="store_true", help="print GET supervision/key's answer")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rotate"]:
            old = keys.signing_key()
            new = keys.supervisor_key_rotate()
            self.stdout.write(f"rotated: {old.fingerprint[:16]}… retired, {new.fingerprint[:16]}… current "
                              f"(written to {new.path})")
        else:
            keys.signing_key()
        publication = keys.key_publication()
        if options["json"]:
            self.stdout.write(json.dumps(publication, ensure_ascii=False, indent=2))
            return
        self.stdout.write(f"key file:    {keys.key_file_path()}")
        self.stdout.write(f"fingerprint: {publication['fingerprint']}")
        self.stdout.write(f"public key:  {publication['public_key']}")
        for previous in publication["previous"]:
            self.stdout.write(f"retired:     {previous['fingerprint']} at {previous['retired_at']}")
