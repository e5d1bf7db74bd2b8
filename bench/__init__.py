"""offload's benchmark: a Django app holding the benchmark's tasks, plus the runner.

Run it with ``scripts/bench`` (or ``python -m bench.run``); see bench/README.md.
"""
