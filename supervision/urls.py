"""Dashboard pages (namespace "supervision"); the overview itself is `config.urls` "" → `dashboard`."""

from django.urls import path

from supervision import views

app_name = "supervision"
urlpatterns = [
    path("alerts/", views.alert_list, name="alert-list"),
    path("alerts/<int:alert_id>/", views.alert_detail, name="alert-detail"),
    path("alerts/<int:alert_id>/triage/", views.alert_triage, name="alert-triage"),
    path("entities/", views.entity_search, name="entity-search"),
    path("entities/<str:ref>/", views.entity_detail, name="entity-detail"),
    path("chains/<str:chain_id>/", views.chain_detail, name="chain-detail"),
    path("chains/<str:chain_id>/blocks/<int:height>/", views.block_detail, name="block-detail"),
    path("transactions/<str:tx_id>/", views.transaction_detail, name="transaction-detail"),
]
