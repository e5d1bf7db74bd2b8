"""The test project's URLs: the admin, and the metrics view a project may route.
offload's own pages (the dashboard included) must be reachable through
``admin.site.urls`` with nothing else."""

from django.contrib import admin
from django.urls import path

from offload import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("offload/metrics", views.metrics),
]
