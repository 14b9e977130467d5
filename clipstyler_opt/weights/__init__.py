"""Weights files: where they are found (explicit files, caches, downloads) and how checkpoints are read."""
