"""World-model hyperparameters and the size presets, from ``debug`` to DreamerV3's 200M."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorldModelConfig:
    """Hyperparameters of the RSSM world model; defaults follow DreamerV3 where it publishes one."""

    deter: int = 512
    """Size of the deterministic recurrent state."""
    hidden: int = 256
    """Width of the RSSM's input and output layers."""
    stoch: int = 32
    """Number of categorical latent variables."""
    classes: int = 32
    """Classes per categorical latent."""
    blocks: int = 1
    """Block-diagonal groups of the GRU (DreamerV3's sizes use 8); 1 is a dense GRU."""
    unimix: float = 0.01
    """Uniform mix of the categorical latents."""
    units: int = 256
    """Width of the MLPs (vector encoder and decoder, prior/posterior heads, reward and continue heads)."""
    layers: int = 2
    """Hidden layers of each MLP."""
    depth: int = 32
    """Channels of the first convolution; doubled at each stride-2 stage."""
    cnn_keys: str = "image"
    """Regex of observation keys that go through the CNN (3-d uint8 images)."""
    mlp_keys: str = "vector"
    """Regex of observation keys that go through the MLP (1-d float vectors)."""
    bins: int = 255
    """Bins of the two-hot reward head."""
    reward_readout: str = "symlog"
    """How the reward head's two-hot bins read out: 'symlog' (DreamerV3's paper: bins evenly spaced in symlog space,
    the prediction ``symexp`` of the expected bin, which reads a rare large reward at a fraction of its expectation)
    or 'raw' (DreamerV3's later code: the same bins as raw values, the prediction their expectation)."""
    free_nats: float = 1.0
    """Free bits: KL terms below this many nats per step are not penalised."""
    dyn_scale: float = 0.5
    """Weight of the dynamics loss KL(sg(posterior) || prior), which trains the prior."""
    rep_scale: float = 0.1
    """Weight of the representation loss KL(posterior || sg(prior)), which trains the posterior."""
    prior_heads: float = 0.0
    """Weight of the reward and continue losses on the prior's features too (what imagination reads), beside the
    posterior's; 0 trains the heads on the posterior only, as DreamerV3 does."""
    lr: float = 1e-4
    """Adam learning rate."""
    eps: float = 1e-8
    """Adam epsilon."""
    grad_clip: float = 1000.0
    """Global gradient-norm clip."""

    def __post_init__(self) -> None:
        sizes = {name: getattr(self, name) for name in ("deter", "hidden", "stoch", "classes", "blocks", "units",
                                                         "depth", "bins")}
        bad = {name: value for name, value in sizes.items() if value < 1}
        if bad or self.layers < 0:
            raise ValueError(f"world-model sizes must be positive integers (layers may be 0), got "
                             f"{bad or {'layers': self.layers}}")
        if self.prior_heads < 0:
            raise ValueError(f"prior_heads must be at least 0, got {self.prior_heads}")
        if self.reward_readout not in ("symlog", "raw"):
            raise ValueError(f"reward_readout must be 'symlog' or 'raw', got {self.reward_readout!r}")
        if self.deter % self.blocks:
            raise ValueError(f"the GRU state (deter={self.deter}) must split evenly into blocks, "
                             f"got blocks={self.blocks}")

    def replace(self, **changes: Any) -> WorldModelConfig:
        """A copy with some fields changed; unknown names raise a ValueError listing the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown world-model fields {unknown}; valid fields: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)


#: DreamerV3's published sizes (hidden d, deter 8d, stoch 32 x d/16 classes, CNN depth d/16, blocks 8),
#: and a ``debug`` size that updates in milliseconds on a CPU.
SIZES: dict[str, dict[str, Any]] = {
    "debug": {"deter": 64, "hidden": 32, "stoch": 8, "classes": 8, "units": 32, "layers": 1, "depth": 4,
              "bins": 31},
    "12M": {"deter": 2048, "hidden": 256, "classes": 16, "units": 256, "depth": 16, "blocks": 8},
    "25M": {"deter": 3072, "hidden": 384, "classes": 24, "units": 384, "depth": 24, "blocks": 8},
    "50M": {"deter": 4096, "hidden": 512, "classes": 32, "units": 512, "depth": 32, "blocks": 8},
    "100M": {"deter": 6144, "hidden": 768, "classes": 48, "units": 768, "depth": 48, "blocks": 8},
    "200M": {"deter": 8192, "hidden": 1024, "classes": 64, "units": 1024, "depth": 64, "blocks": 8},
}


def sized(size: str, **changes: Any) -> WorldModelConfig:
    """The config of a named size preset, with optional further changes."""
    if size not in SIZES:
        raise ValueError(f"unknown world-model size {size!r}; accepted: {', '.join(SIZES)}")
    return WorldModelConfig().replace(**{**SIZES[size], **changes})
