"""Schedules: tasks and management commands fired on cron expressions or intervals,
each tick exactly once however many schedulers run (see docs/schedules.md)."""

from offload.schedules.registry import schedule

__all__ = ["schedule"]
