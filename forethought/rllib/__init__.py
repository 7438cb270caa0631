"""Thin RLlib adapters (new API stack): config and algorithm, RLModule, Learner."""
