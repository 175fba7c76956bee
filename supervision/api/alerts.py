"""`GET alerts`, `GET alerts/{id}`, `PATCH alerts/{id}` (supervision API §1). Regulators only
(the default permission). Thin: parse, call one selector or service, shape with the selectors.
Person identity numbers are masked unless the viewer holds `supervision.view_person_identifiers`."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from supervision import selectors
from supervision.api.base import SupervisionApi
from supervision.models import Alert
from supervision.penetration import can_see_person_ids
from supervision.services import MAX_NOTE_LENGTH, UNSET, alert_update


class AlertPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class AlertListApi(SupervisionApi):
    """Alerts, newest first, filtered by `code`, `severity`, `status` (each one value or a comma
    list), `chain`, `entity` and `since` (RFC 3339 time; alerts seen since then)."""

    @extend_schema(
        operation_id="alert_list",
        parameters=[
            OpenApiParameter(name, str, description=description) for name, description in (
                ("code", "alert code(s), comma-separated"),
                ("severity", "critical, high, medium, low (comma-separated)"),
                ("status", "open, acknowledged, escalated, closed (comma-separated)"),
                ("chain", "chain id"),
                ("entity", "entity id named by the alert"),
                ("since", "RFC 3339 time: alerts whose last_seen is at or after it"),
            )
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        filters = selectors.alert_filters_parse(request.query_params)
        paginator = AlertPagination()
        page = paginator.paginate_queryset(selectors.alert_list(filters=filters), request, view=self) or []
        mask = selectors.alert_mask(page, reveal=can_see_person_ids(request.user))
        return paginator.get_paginated_response([selectors.alert_json(a, mask=mask) for a in page])


class AlertDetailApi(SupervisionApi):
    """One alert with its evidence and history; `PATCH` triages it."""

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Alert.Status.values, required=False)
        assignee = serializers.CharField(required=False, allow_null=True, max_length=150)
        note = serializers.CharField(required=False, allow_blank=True, max_length=MAX_NOTE_LENGTH,
                                     trim_whitespace=True)

        def to_internal_value(self, data: Any) -> Any:
            if not isinstance(data, dict):
                raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown key."] for key in unknown})
            return super().to_internal_value(data)

        def validate_assignee(self, value: str | None) -> Any:
            if value is None:
                return None
            user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: value}).first()
            if user is None:
                raise serializers.ValidationError(f"No user {value!r}.")
            return user

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs:
                raise serializers.ValidationError("Send status, assignee or note.")
            return attrs

    @extend_schema(operation_id="alert_detail", responses={200: dict})
    def get(self, request: Request, alert_id: str) -> Response:
        alert = selectors.alert_get(alert_id=alert_id)
        return Response(selectors.alert_detail_json(alert, reveal=can_see_person_ids(request.user)))

    @extend_schema(operation_id="alert_update", request=InputSerializer, responses={200: dict})
    def patch(self, request: Request, alert_id: str) -> Response:
        pk = selectors.alert_get(alert_id=alert_id).pk  # 404 before validating the body
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        alert = alert_update(
            alert_id=pk,
            by=cast(User, request.user),  # IsRegulator let only users through
            status=data.get("status"),
            assignee=data.get("assignee", UNSET),
            note=data.get("note"),
        )
        return Response(selectors.alert_detail_json(alert, reveal=can_see_person_ids(request.user)))
