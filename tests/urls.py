"""The test project's URLs: the admin (offload's pages, the dashboard included,
must be reachable through ``admin.site.urls`` with nothing else), and the views
the embedded worker's tests call on real servers."""

from django.contrib import admin
from django.urls import path

from tests.app import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("embedded/whoami/", views.whoami),
    path("embedded/stamp/", views.enqueue_stamp),
    path("embedded/sleep/", views.enqueue_sleep),
]
