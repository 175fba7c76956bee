from django.urls import path

from businesschain.api import views

app_name = "businesschain-api"
urlpatterns = [
    path("chains/", views.ChainListApi.as_view(), name="chain-list"),
    path("chains/<str:chain>", views.ChainDetailApi.as_view(), name="chain-detail"),
    path("chains/<str:chain>/blocks", views.BlockSubmitApi.as_view(), name="block-submit"),
    path("transactions/<str:tx_id>", views.TransactionDetailApi.as_view(), name="transaction-detail"),
    path("rejections/", views.RejectionListApi.as_view(), name="rejection-list"),
]
