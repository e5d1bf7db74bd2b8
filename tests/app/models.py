from django.db import models


class Run(models.Model):
    """One execution of ``record_run``: duplicates show up as repeated markers."""

    marker = models.CharField(max_length=100)
    pid = models.IntegerField()

    class Meta:
        db_table = "offload_tests_run"

    def __str__(self) -> str:
        return f"{self.marker} in {self.pid}"
