"""`POST evidence/verify` (supervision API §2): a file, or its SM3, against the chains' evidence."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from businesschain.errors import InvalidInput
from supervision.api.base import SupervisionApi
from supervision.evidence import document_sm3, evidence_records, sm3_checked


class EvidenceVerifyApi(SupervisionApi):
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(operation_id="evidence_verify", request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is not None:
            sm3 = document_sm3(upload.chunks())
        elif isinstance(request.data, dict) and "sm3" in request.data:
            sm3 = sm3_checked(request.data["sm3"])
        else:
            raise InvalidInput("Send a multipart `file` or JSON {\"sm3\": \"<hex>\"}.", code="invalid",
                               errors=[{"path": "/file", "message": "a file or an sm3 is required"}])
        return Response({"sm3": sm3, "records": evidence_records(sm3=sm3)})
