"""The loss terms, one module each; every module declares `TERM = LossTerm(...)` and is found by
the registry (registry.py) without being listed anywhere else."""
