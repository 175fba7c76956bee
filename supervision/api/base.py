"""The base of every supervision API view."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.views import APIView

from businesschain.api.authentication import ChainTokenAuthentication


class SupervisionApi(APIView):
    """A business chain's key is recognised as that chain, so a chain is told 403 (authenticated,
    not allowed) where only regulators may read, instead of 401 for an unknown token. Regulators
    sign in with a session or a script token (DRF's defaults)."""

    authentication_classes: list[type[BaseAuthentication]] = [
        ChainTokenAuthentication, *APIView.authentication_classes,
    ]
