"""Predictive world models learned from raw experience: pure torch, no Ray, W&B or envs."""
