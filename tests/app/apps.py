from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.app"
    label = "offload_tests"
