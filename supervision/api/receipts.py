"""ECP/1 §5–§6 endpoints of the supervision chain: receipts, supervision blocks, the supervisor's
key, and the block explorer (`chains/{chain}/blocks/{height}`, which shows the anchor)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from businesschain.api.authentication import ChainTokenAuthentication, chain_token
from businesschain.api.permissions import IsAuthenticatedParty, IsRegulatorOrOwnChain
from supervision import chain_selectors, keys

_AUTH: list[type[BaseAuthentication]] = [ChainTokenAuthentication, *APIView.authentication_classes]


class ReceiptDetailApi(APIView):
    """The inclusion proof of an accepted block in the supervision chain; 202 until sealed."""

    authentication_classes = _AUTH
    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict, 202: OpenApiResponse(description='{"status": "pending"}')})
    def get(self, request: Request, block_hash: str) -> Response:
        token = chain_token(request)
        receipt = chain_selectors.receipt_get(block_hash=block_hash,
                                              chain_id=token.chain_id if token else None)
        if receipt is None:
            return Response({"status": "pending"}, status=202)
        return Response(receipt)


class SupervisionHeadApi(APIView):
    """The latest sealed supervision block."""

    authentication_classes = _AUTH
    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(chain_selectors.supervision_block_json(chain_selectors.supervision_head_get()))


class SupervisionBlockDetailApi(APIView):
    """One supervision block by height."""

    authentication_classes = _AUTH
    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, height: int) -> Response:
        block = chain_selectors.supervision_block_get(height=height)
        return Response(chain_selectors.supervision_block_json(block))


class SupervisionKeyApi(APIView):
    """The supervisor's current SM2 public key and certificate, and the retired keys."""

    authentication_classes = _AUTH
    permission_classes = [IsAuthenticatedParty]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(keys.key_publication())


class ChainBlockDetailApi(APIView):
    """A stored business block, its verification record and its anchor (ECP/1 §5)."""

    authentication_classes = _AUTH
    permission_classes = [IsRegulatorOrOwnChain]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, chain: str, height: int) -> Response:
        return Response(chain_selectors.chain_block_detail(chain_id=chain, height=height))
