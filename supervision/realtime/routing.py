"""Websocket routes (supervision API §1, live push)."""

from django.urls import path

websocket_urlpatterns: list = []
