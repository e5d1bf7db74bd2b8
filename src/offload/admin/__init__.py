"""The operator's pages in Django's admin: tasks (all, and one view per status),
workers, queues with pause and resume, and a live dashboard.

Django's admin autodiscovery imports this package; each module registers its
own ModelAdmin.
"""

from offload.admin import dashboard, queues, task_lists, tasks, workers

__all__ = ["dashboard", "queues", "task_lists", "tasks", "workers"]
