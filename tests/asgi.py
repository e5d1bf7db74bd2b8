"""The test project as an ASGI application, for the tests that run uvicorn:
the embedded worker starts and stops with the server's lifespan."""

from django.core.asgi import get_asgi_application

from offload.embedded.asgi import with_embedded_worker

application = with_embedded_worker(get_asgi_application())  # type: ignore[arg-type]
