from django.apps import AppConfig


class BusinesschainConfig(AppConfig):
    name = "businesschain"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from businesschain import checks  # noqa: F401  (registers the gm system check)
