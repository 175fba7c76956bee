"""`GET entities`, `entities/{id}`, `entities/{id}/beneficial-owners`, `entities/{id}/graph`
(supervision API §1). Regulators only (the default permission). Person identity numbers are masked
unless the viewer holds `supervision.view_person_identifiers`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from supervision import penetration
from supervision.api.base import SupervisionApi


class EntityPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class EntityListApi(SupervisionApi):
    """Entities whose id starts with `q`, whose name contains `q`, or that hold account `q`."""

    @extend_schema(operation_id="entity_list", responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("q", str, description="id, name or account")])
    def get(self, request: Request) -> Response:
        entities = penetration.entity_search(q=request.query_params.get("q", ""), viewer=request.user)
        paginator = EntityPagination()
        page = paginator.paginate_queryset(entities, request, view=self) or []
        mask = penetration.IdentifierMask.for_user(request.user)
        return paginator.get_paginated_response([penetration.entity_search_item(e, mask) for e in page])


class EntityDetailApi(SupervisionApi):
    """An entity: kind, name, chains, accounts, ultimate controller, control group, beneficial owners."""

    @extend_schema(operation_id="entity_detail", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, entity_id: str) -> Response:
        return Response(penetration.entity_detail(entity_id=entity_id, viewer=request.user))


class EntityBeneficialOwnersApi(SupervisionApi):
    """Beneficial owners (受益所有人) of an organisation at `threshold` (default 0.25), with paths."""

    @extend_schema(operation_id="entity_beneficial_owners", responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("threshold", str, description="0 < t ≤ 1, default 0.25")])
    def get(self, request: Request, entity_id: str) -> Response:
        threshold = penetration.parse_threshold(request.query_params.get("threshold"))
        return Response(penetration.entity_beneficial_owners(
            entity_id=entity_id, threshold=threshold, viewer=request.user))


class EntityGraphApi(SupervisionApi):
    """Nodes and weighted holding edges within `depth` (1–6, default 3) links of the entity."""

    @extend_schema(operation_id="entity_graph", responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("depth", int, description="1–6, default 3")])
    def get(self, request: Request, entity_id: str) -> Response:
        depth = penetration.parse_depth(request.query_params.get("depth"))
        return Response(penetration.entity_graph(entity_id=entity_id, depth=depth, viewer=request.user))
