"""Building blocks: MLPs, a layer-normed (block) GRU cell, and encoders and decoders for dict observations.

Every hidden layer is linear -> LayerNorm -> SiLU, as in DreamerV3. Images are uint8 H x W x C
in the batch and are scaled to [-0.5, 0.5] inside; vectors pass through symlog so that large
magnitudes do not dominate.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from world_models.distributions import symlog


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Hold a module's weights fixed for a while: gradients still flow through it to its inputs, none to its
    weights (nor the matrix products that would compute them)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


class MLP(nn.Sequential):
    """``layers`` x (Linear -> LayerNorm -> SiLU) from ``in_dim`` to ``units``."""

    def __init__(self, in_dim: int, units: int, layers: int):
        modules: list[nn.Module] = []
        for i in range(layers):
            modules += [nn.Linear(in_dim if i == 0 else units, units, bias=False), nn.LayerNorm(units), nn.SiLU()]
        super().__init__(*modules)
        self.out_dim = units if layers else in_dim


class BlockLinear(nn.Module):
    """A linear map that is block-diagonal over ``blocks`` groups: ``[..., g * i] -> [..., g * o]``."""

    def __init__(self, in_dim: int, out_dim: int, blocks: int):
        super().__init__()
        assert in_dim % blocks == 0 and out_dim % blocks == 0, (in_dim, out_dim, blocks)
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, in_dim // blocks, out_dim // blocks))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.uniform_(self.weight, -1 / math.sqrt(in_dim // blocks), 1 / math.sqrt(in_dim // blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.blocks, x.shape[-1] // self.blocks)
        y = torch.einsum("ngi,gio->ngo", x, self.weight)
        return y.reshape(*lead, -1) + self.bias


class GRUCell(nn.Module):
    """A GRU cell with layer norm on its gates (DreamerV2/V3), optionally block-diagonal.

    With ``blocks`` > 1 the recurrent state is split into that many groups; each group sees the
    whole input but only its own part of the state, which cuts the parameters of a large state
    by the number of blocks (DreamerV3's sizes use 8).
    """

    def __init__(self, in_dim: int, size: int, blocks: int = 1):
        super().__init__()
        if blocks < 1 or size % blocks:
            raise ValueError(f"the GRU state ({size} units) must split evenly into blocks, got blocks={blocks}")
        self.size, self.blocks = size, blocks
        if blocks == 1:
            self.gates: nn.Module = nn.Linear(in_dim + size, 3 * size, bias=False)
        else:
            # each block's input is [its slice of the state, the whole input]
            self.gates = BlockLinear(blocks * (size // blocks + in_dim), 3 * size, blocks)
        # layer norm within each block, so that blocks stay independent of each other's state
        self.norm_weight = nn.Parameter(torch.ones(3 * size))
        self.norm_bias = nn.Parameter(torch.zeros(3 * size))

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        if self.blocks == 1:
            inputs = torch.cat([x, state], -1)
        else:
            parts = state.reshape(*state.shape[:-1], self.blocks, -1)
            inputs = torch.cat([parts, x.unsqueeze(-2).expand(*parts.shape[:-1], x.shape[-1])], -1)
            inputs = inputs.flatten(-2)
        gates = self.gates(inputs)
        grouped = gates.reshape(*gates.shape[:-1], self.blocks, -1)  # outputs are ordered [block, gate, unit]
        grouped = F.layer_norm(grouped, grouped.shape[-1:])
        gates = grouped.flatten(-2) * self.norm_weight + self.norm_bias
        if self.blocks == 1:
            reset, cand, update = gates.chunk(3, -1)
        else:
            regrouped = gates.reshape(*gates.shape[:-1], self.blocks, 3, -1)
            reset, cand, update = (g.flatten(-2) for g in regrouped.unbind(-2))
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)  # biased towards keeping the state
        return update * cand + (1 - update) * state


def _channel_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(1, channels)  # layer norm over channels and space of each image


class ConvEncoder(nn.Module):
    """Stride-2 convolutions (kernel 4) down to a 4 x 4 map, channels ``depth`` x 1, 2, 4, 8, ..."""

    def __init__(self, image_shape: Sequence[int], depth: int):
        super().__init__()
        height, width, channels = image_shape
        if height != width or height < 8 or height & (height - 1):
            raise ValueError(f"images must be square with a power-of-two side of at least 8, got {height} x {width}")
        stages = int(math.log2(height)) - 2
        modules: list[nn.Module] = []
        in_ch = channels
        for i in range(stages):
            out_ch = depth * 2**i
            modules += [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), _channel_norm(out_ch), nn.SiLU()]
            in_ch = out_ch
        self.net = nn.Sequential(*modules, nn.Flatten())
        self.out_dim = in_ch * 4 * 4

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """[N, H, W, C] uint8 -> [N, out_dim]."""
        x = image.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.net(x)


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: features -> 4 x 4 map -> transposed convolutions -> image in [-0.5, 0.5]."""

    def __init__(self, in_dim: int, image_shape: Sequence[int], depth: int):
        super().__init__()
        height, _, channels = image_shape
        stages = int(math.log2(height)) - 2
        self.start_ch = depth * 2 ** (stages - 1)
        self.linear = nn.Linear(in_dim, self.start_ch * 16)
        modules: list[nn.Module] = []
        in_ch = self.start_ch
        for i in reversed(range(stages)):
            last = i == 0
            out_ch = channels if last else depth * 2 ** (i - 1)
            modules.append(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=last))
            if not last:
                modules += [_channel_norm(out_ch), nn.SiLU()]
            in_ch = out_ch
        self.net = nn.Sequential(*modules)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """[N, in_dim] -> [N, H, W, C] predicted image, scaled like the encoder's input."""
        x = self.linear(feat).reshape(-1, self.start_ch, 4, 4)
        return self.net(x).permute(0, 2, 3, 1)


def split_keys(obs_space: Mapping[str, Sequence[int]], cnn_keys: str, mlp_keys: str) -> tuple[list[str], list[str]]:
    """Image keys (3-d shapes matching the ``cnn_keys`` regex) and vector keys (1-d, ``mlp_keys``)."""
    cnn = [k for k, shape in obs_space.items() if len(shape) == 3 and re.fullmatch(cnn_keys, k)]
    mlp = [k for k, shape in obs_space.items() if len(shape) == 1 and re.fullmatch(mlp_keys, k)]
    if not cnn and not mlp:
        raise ValueError(
            f"no observation key matches cnn_keys={cnn_keys!r} (3-d images) or mlp_keys={mlp_keys!r} (vectors); "
            f"the observation has {dict(obs_space)}"
        )
    return cnn, mlp


class MultiEncoder(nn.Module):
    """Embed a dict observation: image keys (stacked on channels) through a CNN, vectors through an MLP."""

    def __init__(self, obs_space: Mapping[str, Sequence[int]], cnn_keys: str, mlp_keys: str,
                 depth: int, units: int, layers: int):
        super().__init__()
        self.cnn_keys, self.mlp_keys = split_keys(obs_space, cnn_keys, mlp_keys)
        self.out_dim = 0
        if self.cnn_keys:
            shape = list(obs_space[self.cnn_keys[0]])
            shape[-1] = sum(obs_space[k][-1] for k in self.cnn_keys)
            self.cnn = ConvEncoder(shape, depth)
            self.out_dim += self.cnn.out_dim
        if self.mlp_keys:
            in_dim = sum(obs_space[k][0] for k in self.mlp_keys)
            self.mlp = MLP(in_dim, units, layers)
            self.out_dim += self.mlp.out_dim

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Observation tensors [B, T, ...] -> embedding [B, T, out_dim]."""
        outs = []
        lead = None
        if self.cnn_keys:
            image = torch.cat([obs[k] for k in self.cnn_keys], -1)
            lead = image.shape[:-3]
            outs.append(self.cnn(image.reshape(-1, *image.shape[-3:])).reshape(*lead, -1))
        if self.mlp_keys:
            vector = torch.cat([obs[k].float() for k in self.mlp_keys], -1)
            outs.append(self.mlp(symlog(vector)))
        return torch.cat(outs, -1)


class MultiDecoder(nn.Module):
    """Predict every encoded key from features; losses are summed squared errors per key.

    Images are compared in the encoder's [-0.5, 0.5] scale, vectors in symlog space.
    """

    def __init__(self, feat_dim: int, obs_space: Mapping[str, Sequence[int]], cnn_keys: str, mlp_keys: str,
                 depth: int, units: int, layers: int):
        super().__init__()
        self.cnn_keys, self.mlp_keys = split_keys(obs_space, cnn_keys, mlp_keys)
        self.channels = [obs_space[k][-1] for k in self.cnn_keys]
        if self.cnn_keys:
            shape = list(obs_space[self.cnn_keys[0]])
            shape[-1] = sum(self.channels)
            self.cnn = ConvDecoder(feat_dim, shape, depth)
        if self.mlp_keys:
            self.sizes = [obs_space[k][0] for k in self.mlp_keys]
            self.mlp = nn.Sequential(MLP(feat_dim, units, layers), nn.Linear(units if layers else feat_dim,
                                                                              sum(self.sizes)))

    def forward(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features [B, T, F] -> predicted observations: images in [-0.5, 0.5], vectors in symlog space."""
        out: dict[str, torch.Tensor] = {}
        lead = feat.shape[:-1]
        if self.cnn_keys:
            image = self.cnn(feat.reshape(-1, feat.shape[-1]))
            image = image.reshape(*lead, *image.shape[1:])
            out.update(zip(self.cnn_keys, image.split(self.channels, -1), strict=True))
        if self.mlp_keys:
            out.update(zip(self.mlp_keys, self.mlp(feat).split(self.sizes, -1), strict=True))
        return out

    def loss(self, pred: Mapping[str, torch.Tensor], obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-key squared error summed over each observation's elements: [B, T] each."""
        losses = {}
        for key in self.cnn_keys:
            target = obs[key].float() / 255.0 - 0.5
            losses[key] = (pred[key] - target).square().sum((-3, -2, -1))
        for key in self.mlp_keys:
            losses[key] = (pred[key] - symlog(obs[key].float())).square().sum(-1)
        return losses
