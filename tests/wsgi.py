"""The test project as a WSGI application, for the tests that run gunicorn."""

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
