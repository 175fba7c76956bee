"""A business chain's HTTP side of ECP/1 §5: one keep-alive `httpx.Client` per chain."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Answer:
    """The status, JSON body and round-trip time of one request."""

    status: int
    data: dict[str, Any]
    seconds: float

    @property
    def code(self) -> str | None:
        """The ECP/1 error code, or None for a success."""
        value = self.data.get("code") if self.status >= 400 else None
        return str(value) if value is not None else None


def encode_block(block: dict[str, Any]) -> bytes:
    """A block as the UTF-8 JSON body of a POST (names stay readable: no \\u escapes)."""
    return json.dumps(block, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ChainClient:
    """Submits one chain's blocks and reads its head, authenticated with the chain's API key."""

    def __init__(self, base_url: str, chain_id: str, api_key: str, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.chain_id = chain_id
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1/",
            headers={"Authorization": f"Token {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, response: httpx.Response, started: float) -> Answer:
        try:
            data = response.json()
        except ValueError:
            data = {"detail": response.text[:200]}
        if not isinstance(data, dict):
            data = {"data": data}
        return Answer(response.status_code, data, time.perf_counter() - started)

    def chain(self) -> Answer:
        """`GET chains/{chain}`: height, head_hash, next_height, nodes, status."""
        started = time.perf_counter()
        return self._answer(self.http.get(f"chains/{self.chain_id}"), started)

    def post_body(self, body: bytes) -> Answer:
        """`POST chains/{chain}/blocks` with an encoded block (or `{"blocks": [...]}`)."""
        started = time.perf_counter()
        response = self.http.post(f"chains/{self.chain_id}/blocks", content=body,
                                  headers={"Content-Type": "application/json"})
        return self._answer(response, started)

    def post_block(self, block: dict[str, Any]) -> Answer:
        return self.post_body(encode_block(block))
