"""Views that enqueue, for the embedded worker's tests with real servers."""

import os

from django.http import HttpRequest, JsonResponse

from tests.app import tasks


def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"pid": os.getpid()})


def enqueue_stamp(request: HttpRequest) -> JsonResponse:
    result = tasks.stamp.enqueue()
    return JsonResponse({"id": result.id, "pid": os.getpid()})


def enqueue_sleep(request: HttpRequest) -> JsonResponse:
    seconds = float(request.GET.get("seconds", "1"))
    result = tasks.sleep_then_return.enqueue(seconds, "slept")
    return JsonResponse({"id": result.id, "pid": os.getpid()})
