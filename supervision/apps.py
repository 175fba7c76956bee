from django.apps import AppConfig


class SupervisionConfig(AppConfig):
    name = "supervision"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import supervision.anchoring_receivers  # noqa: F401
        from supervision import alert_receivers, analytics_receivers  # noqa: F401
