"""The test project's URLs: the admin, and the metrics view a project may route.
offload's own pages (the dashboard included) must be reachable through
``admin.site.urls`` with nothing else."""

from django.contrib import admin
from django.urls import path

from offload import views
from tests.app import views as app_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("offload/metrics", views.metrics),
    path("embedded/whoami/", app_views.whoami),
    path("embedded/stamp/", app_views.enqueue_stamp),
    path("embedded/sleep/", app_views.enqueue_sleep),
]
