"""Predictive world models learned from raw experience: pure torch, no Ray, W&B or envs.

``WorldModel(obs_space, action_dim, sized("12M"))`` builds DreamerV3's RSSM world model over dict
observations; ``loss(batch)``, ``update(batch)``, ``observe``, ``imagine``, ``report``, ``save`` and
``WorldModel.from_file`` are its interface.
"""

from world_models.config import SIZES, WorldModelConfig, sized
from world_models.distributions import (
    CategoricalLatent,
    ReturnNormalizer,
    TwoHot,
    kl_categorical,
    symexp,
    symlog,
    twohot_bins,
    twohot_encode,
)
from world_models.rssm import RSSM
from world_models.world_model import CheckpointError, WorldModel, kl_balance

__all__ = [
    "RSSM",
    "SIZES",
    "CategoricalLatent",
    "CheckpointError",
    "ReturnNormalizer",
    "TwoHot",
    "WorldModel",
    "WorldModelConfig",
    "kl_balance",
    "kl_categorical",
    "sized",
    "symexp",
    "symlog",
    "twohot_bins",
    "twohot_encode",
]
