from django.apps import AppConfig


class BusinesschainConfig(AppConfig):
    name = "businesschain"
    default_auto_field = "django.db.models.BigAutoField"
