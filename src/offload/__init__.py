"""Background tasks for Django's tasks framework, stored in the project's database."""

__version__ = "0.1.0"
