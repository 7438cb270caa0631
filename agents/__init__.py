"""Policies, planners and their losses, trained inside world models: pure torch, no Ray, W&B or envs."""
