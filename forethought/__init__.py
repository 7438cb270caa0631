"""Forethought's application layer: config, evaluation, CLI (and, later, the RLlib adapters)."""

__version__ = "0.1.0"
