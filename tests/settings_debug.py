"""The test settings as a brand-new ``startproject`` site has them: DEBUG on and
Django's default logging (no ``LOGGING`` of its own)."""

from tests.settings import *  # noqa: F403

DEBUG = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
