from django.apps import AppConfig


class OffloadConfig(AppConfig):
    name = "offload"
    label = "offload"
    verbose_name = "Offload tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from offload import checks  # noqa: F401  (registers the system checks)
