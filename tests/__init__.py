"""Forethought tests (a package, so that `tests.*` wins over stray top-level `tests` packages)."""
