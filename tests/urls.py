"""The test project's URLs: the admin alone. offload's pages (the dashboard
included) must be reachable through ``admin.site.urls`` with nothing else."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
