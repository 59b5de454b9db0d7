from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "apps.dashboards"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from datamind.lib.schedules import install_after_migrate

        install_after_migrate(self)
