from django.apps import AppConfig, apps


class OffloadConfig(AppConfig):
    name = "offload"
    label = "offload"
    verbose_name = "Offload tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from offload import checks  # noqa: F401  (registers the system checks)
        from offload.embedded.startup import on_request_started
        from offload.schedules import checks as schedule_checks  # noqa: F401

        if apps.is_installed("django.contrib.admin"):
            from django.contrib import admin

            from offload.admin import schedules  # noqa: F401  (registers the Schedule admin)
            from offload.admin.unmigrated import guard

            # Before migrate, offload's pages say so rather than fail with a 500.
            guard(admin.site)
        # The embedded worker (docs/embedded.md) starts with a process's first
        # request: by then a forking server has forked.
        request_started.connect(on_request_started, dispatch_uid="offload-embedded")
