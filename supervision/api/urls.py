from django.urls import re_path

from supervision.api import alerts

app_name = "supervision-api"
urlpatterns: list = [
    re_path(r"^alerts/?$", alerts.AlertListApi.as_view(), name="alert-list"),
    re_path(r"^alerts/(?P<alert_id>[0-9]{1,18})/?$", alerts.AlertDetailApi.as_view(), name="alert-detail"),
]
