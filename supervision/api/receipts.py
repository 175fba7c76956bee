"""ECP/1 §5–§6 endpoints of the supervision chain: receipts, supervision blocks, the supervisor's
key, and the block explorer (`chains/{chain}/blocks/{height}`, which shows the anchor)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from businesschain.api.authentication import chain_token
from businesschain.api.permissions import IsAuthenticatedParty, IsRegulatorOrOwnChain
from supervision import chain_selectors, keys
from supervision.api.base import SupervisionApi


class ReceiptDetailApi(SupervisionApi):
    """The inclusion proof of an accepted block in the supervision chain; 202 until sealed."""

    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict, 202: OpenApiResponse(description='{"status": "pending"}')})
    def get(self, request: Request, block_hash: str) -> Response:
        token = chain_token(request)
        receipt = chain_selectors.receipt_get(block_hash=block_hash,
                                              chain_id=token.chain_id if token else None)
        if receipt is None:
            return Response({"status": "pending"}, status=202)
        return Response(receipt)


class SupervisionHeadApi(SupervisionApi):
    """The latest sealed supervision block."""

    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(chain_selectors.supervision_block_json(chain_selectors.supervision_head_get()))


class SupervisionBlockDetailApi(SupervisionApi):
    """One supervision block by height."""

    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, height: int) -> Response:
        block = chain_selectors.supervision_block_get(height=height)
        return Response(chain_selectors.supervision_block_json(block))


class SupervisionKeyApi(SupervisionApi):
    """The supervisor's current SM2 public key and certificate, and the retired keys."""

    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict, 404: OpenApiResponse(
        description='{"code": "no_supervisor_key"}: no key registered yet (the sealer registers it '
                    'at start-up, or `manage.py supervisor_key`)')})
    def get(self, request: Request) -> Response:
        return Response(keys.key_publication())


class ChainBlockDetailApi(SupervisionApi):
    """A stored business block, its verification record and its anchor (ECP/1 §5)."""

    permission_classes = [IsRegulatorOrOwnChain]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, chain: str, height: int) -> Response:
        return Response(chain_selectors.chain_block_detail(chain_id=chain, height=height))
