"""Websocket routes (supervision API §1, live push)."""

from django.urls import path

from supervision.realtime.consumers import AlertsConsumer

websocket_urlpatterns: list = [
    path("ws/alerts/", AlertsConsumer.as_asgi(), name="ws-alerts"),
]
