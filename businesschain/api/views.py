"""ECP/1 §5 endpoints of the business-chain side. Thin: authentication, then one service or selector."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from businesschain import selectors
from businesschain.api.authentication import ChainTokenAuthentication, chain_token, presented_key
from businesschain.api.permissions import IsAuthenticatedParty, IsRegulator, IsRegulatorOrOwnChain
from businesschain.ingest import block_submit

_AUTH: list[type[BaseAuthentication]] = [ChainTokenAuthentication, *APIView.authentication_classes]


class BlockSubmitApi(APIView):
    """Business chains push one block, or `{"blocks": [...]}`, here (ECP/1 §5)."""

    # No fall-through to DRF's TokenAuthentication: an unknown or revoked key must reach
    # block_submit, whose 401 leaves a rejection record.
    authentication_classes = [ChainTokenAuthentication, SessionAuthentication]
    permission_classes = [AllowAny]  # block_submit applies ECP/1's own order of checks

    @extend_schema(operation_id="block_submit", request=OpenApiTypes.OBJECT,
                   responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT})
    def post(self, request: Request, chain: str) -> Response:
        token = chain_token(request)
        body: bytes | None = b""
        if token is not None:  # nobody else's body is read, hashed or kept
            try:
                body = request.body
            except RequestDataTooBig:
                body = None
        length = request.META.get("CONTENT_LENGTH") or "0"
        outcome = block_submit(
            chain_id=chain,
            body=body,
            token=token,
            presented_key=presented_key(request),
            authenticated_user=bool(request.user and request.user.is_authenticated),
            remote_addr=request.META.get("REMOTE_ADDR", ""),
            content_length=int(length) if length.isdigit() else None,
        )
        return Response(outcome.as_json(), status=outcome.http_status)


class ChainListApi(APIView):
    """Registered chains and their heads, for regulators."""

    permission_classes = [IsRegulator]

    @extend_schema(operation_id="chain_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(selectors.chain_list())


class ChainDetailApi(APIView):
    authentication_classes = _AUTH
    permission_classes = [IsRegulatorOrOwnChain]

    @extend_schema(operation_id="chain_detail", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, chain: str) -> Response:
        return Response(selectors.chain_summary(selectors.chain_get(chain_id=chain)))


class TransactionDetailApi(APIView):
    """A stored transaction by tx_id; a chain sees only its own."""

    authentication_classes = _AUTH
    permission_classes = [IsAuthenticatedParty]

    @extend_schema(operation_id="transaction_detail", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, tx_id: str) -> Response:
        token = chain_token(request)
        tx = selectors.transaction_get(tx_id=tx_id, chain_id=token.chain_id if token else None)
        return Response(selectors.transaction_detail(tx))


class RejectionListApi(APIView):
    """Refused submissions (what, when, which code, from which token), for regulators."""

    permission_classes = [IsRegulator]

    @extend_schema(operation_id="rejection_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            selectors.rejection_list(chain_id=request.query_params.get("chain")), request, view=self
        )
        return paginator.get_paginated_response([selectors.rejection_json(r) for r in page or []])
