from django.urls import path, re_path

from supervision.api import alerts, entities, evidence, receipts

app_name = "supervision-api"
urlpatterns: list = [
    re_path(r"^alerts/?$", alerts.AlertListApi.as_view(), name="alert-list"),
    re_path(r"^alerts/(?P<alert_id>[0-9]{1,18})/?$", alerts.AlertDetailApi.as_view(), name="alert-detail"),
    path("receipts/<str:block_hash>", receipts.ReceiptDetailApi.as_view(), name="receipt-detail"),
    path("supervision/head", receipts.SupervisionHeadApi.as_view(), name="supervision-head"),
    path("supervision/blocks/<int:height>", receipts.SupervisionBlockDetailApi.as_view(),
         name="supervision-block-detail"),
    path("supervision/key", receipts.SupervisionKeyApi.as_view(), name="supervision-key"),
    path("chains/<str:chain>/blocks/<int:height>", receipts.ChainBlockDetailApi.as_view(),
         name="block-detail"),
    re_path(r"^evidence/verify/?$", evidence.EvidenceVerifyApi.as_view(), name="evidence-verify"),
    re_path(r"^entities/?$", entities.EntityListApi.as_view(), name="entity-list"),
    re_path(r"^entities/(?P<entity_id>[A-Za-z0-9:-]{1,64})/?$", entities.EntityDetailApi.as_view(),
            name="entity-detail"),
    re_path(r"^entities/(?P<entity_id>[A-Za-z0-9:-]{1,64})/beneficial-owners/?$",
            entities.EntityBeneficialOwnersApi.as_view(), name="entity-beneficial-owners"),
    re_path(r"^entities/(?P<entity_id>[A-Za-z0-9:-]{1,64})/graph/?$", entities.EntityGraphApi.as_view(),
            name="entity-graph"),
]
