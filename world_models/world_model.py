"""The world model: encoder, RSSM, decoder, reward and continue heads, their losses and one update step.

A batch is a dict of tensors [B, T, ...]: the observation keys, ``action`` [B, T, A] (taken after
seeing observation t), ``reward`` [B, T] (received on arriving at observation t), ``is_first`` and
``is_terminal`` [B, T].
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from world_models.config import WorldModelConfig
from world_models.distributions import CategoricalLatent, TwoHot, symexp, twohot_bins
from world_models.networks import MLP, MultiDecoder, MultiEncoder
from world_models.rssm import RSSM, State

FORMAT = "forethought.world_model"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A weights file that is corrupt, of another format or version, or of another model size."""


class WorldModel(nn.Module):
    """DreamerV3's world model over dict observations, with its optimiser."""

    bins: torch.Tensor

    def __init__(self, obs_space: Mapping[str, Sequence[int]], action_dim: int,
                 config: WorldModelConfig | None = None):
        super().__init__()
        self.config = c = config or WorldModelConfig()
        self.obs_space = {k: tuple(int(d) for d in shape) for k, shape in obs_space.items()}
        self.action_dim = int(action_dim)
        self.encoder = MultiEncoder(self.obs_space, c.cnn_keys, c.mlp_keys, c.depth, c.units, c.layers)
        self.rssm = RSSM(self.encoder.out_dim, self.action_dim, c)
        feat = self.rssm.feat_dim
        self.decoder = MultiDecoder(feat, self.obs_space, c.cnn_keys, c.mlp_keys, c.depth, c.units, c.layers)
        reward_out = nn.Linear(c.units, c.bins)
        # zero-initialised reward output: predictions start at exactly 0 instead of a random value
        nn.init.zeros_(reward_out.weight)
        nn.init.zeros_(reward_out.bias)
        self.reward_head = nn.Sequential(MLP(feat, c.units, c.layers), reward_out)
        self.cont_head = nn.Sequential(MLP(feat, c.units, c.layers), nn.Linear(c.units, 1))
        #: the reward head's bins are raw values (``reward_readout`` 'raw')
        self.raw_reward = c.reward_readout == "raw"
        self.register_buffer("bins", twohot_bins(c.bins, raw=self.raw_reward), persistent=False)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=c.lr, eps=c.eps)
        #: called with the parameters after backward, before clipping: data-parallel learners average
        #: their gradients here (set by the trainer; None on one learner)
        self.grad_sync: Callable[[list[nn.Parameter]], None] | None = None

    @property
    def keys(self) -> list[str]:
        """The observation keys the model encodes and predicts."""
        return self.encoder.cnn_keys + self.encoder.mlp_keys

    def _check(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, int]:
        for key in ("action", "reward", "is_first", "is_terminal", *self.keys):
            if key not in batch:
                needed = ["action", "reward", "is_first", "is_terminal", *self.keys]
                raise KeyError(f"batch has no '{key}'; it needs {needed}")
        batch_size, steps = batch["reward"].shape
        for key in self.keys:
            expected = (batch_size, steps, *self.obs_space[key])
            shape = tuple(batch[key].shape)
            assert shape == expected, f"batch['{key}'] is {shape}, expected {expected}"
        assert batch["action"].shape == (batch_size, steps, self.action_dim), (
            f"batch['action'] is {tuple(batch['action'].shape)}, expected {(batch_size, steps, self.action_dim)}")
        floats = [key for key, value in batch.items() if value.is_floating_point()]
        finite = torch.stack([torch.isfinite(batch[key]).all() for key in floats]).tolist()  # one sync
        for key, ok in zip(floats, finite, strict=True):
            if not ok:
                raise FloatingPointError(f"batch['{key}'] holds NaN or infinite values")
        return batch_size, steps

    def compile_parts(self, chunk: int = 4, **options: Any) -> None:
        """``torch.compile`` the world model's training pass in place: the encoder, the posterior's loop ``chunk``
        steps at a time (unrolled; the RSSM's single steps too, for acting and imagination) and the heads with the
        losses as one region. A longer chunk runs a little faster and compiles for longer (README, Learner speed).
        Weight names do not change."""
        for module in (self.encoder, self.decoder, self.reward_head, self.cont_head):  # also called on their own
            module.compile(**options)
        self.rssm.chunk = chunk
        self.rssm.observe_steps = torch.compile(self.rssm.observe_steps, **options)  # type: ignore[method-assign]
        self.rssm.img_step = torch.compile(self.rssm.img_step, **options)  # type: ignore[method-assign]
        self._loss_terms = torch.compile(self._loss_terms, **options)  # type: ignore[method-assign]

    # --- the model ------------------------------------------------------------------------
    def observe(self, batch: Mapping[str, torch.Tensor], sample: bool = True) -> tuple[State, State]:
        """Posterior and prior states [B, T, ...] of a batch."""
        self._check(batch)
        return self._observe(batch, sample)

    def _observe(self, batch: Mapping[str, torch.Tensor], sample: bool = True) -> tuple[State, State]:
        """``observe`` of a batch already checked (the check waits for the device, which a compiled loss cannot)."""
        embed = self.encoder({k: batch[k] for k in self.keys})
        return self.rssm.observe(embed, batch["action"].float(), batch["is_first"], sample=sample)

    def imagine(self, policy: Any, start: State, horizon: int) -> State:
        """Imagined trajectory [N, horizon + 1, ...] from start states under ``policy``."""
        return self.rssm.imagine(policy, start, horizon)

    @torch.no_grad()
    def decode(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Observations predicted from features [..., F]: uint8 images per image key, raw vectors per vector key."""
        pred = self.decoder(feat)
        out = {key: ((pred[key] + 0.5) * 255).clamp(0, 255).to(torch.uint8) for key in self.encoder.cnn_keys}
        out.update({key: symexp(pred[key]) for key in self.encoder.mlp_keys})
        return out

    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        """Predicted reward in raw units."""
        return TwoHot(self.reward_head(feat), self.bins, self.raw_reward).mean()

    def cont(self, feat: torch.Tensor) -> torch.Tensor:
        """Predicted probability that the episode continues."""
        return torch.sigmoid(self.cont_head(feat).squeeze(-1))

    # --- losses and update ----------------------------------------------------------------
    def loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The world-model loss of a batch and its metrics; changes no state."""
        loss, metrics, _ = self.loss_and_states(batch)
        return loss, metrics

    def loss_and_states(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float], State]:
        """Loss, metrics and the posterior states (to start imagination from)."""
        self._check(batch)
        total, values, post = self._terms(batch)
        return total, _to_floats(values), post

    def _terms(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor], State]:
        """The loss, its terms as tensors (still on the device), and the posterior states, of a checked batch:
        pure, so that ``compile_parts`` can compile it whole."""
        post, prior = self._observe(batch)
        total, values = self._loss_terms(batch, post, prior)
        return total, values, post

    def _loss_terms(self, batch: Mapping[str, torch.Tensor], post: State, prior: State
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss and its terms from the batch's posterior and prior states (heads, decoder and KL balancing)."""
        c = self.config
        feat = self.rssm.feat(post)
        losses = {f"loss_{k}": v for k, v in self.decoder.loss(self.decoder(feat), batch).items()}
        losses["loss_reward"] = -TwoHot(self.reward_head(feat), self.bins, self.raw_reward).log_prob(
            batch["reward"].float())
        cont_target = 1.0 - batch["is_terminal"].float()
        losses["loss_cont"] = F.binary_cross_entropy_with_logits(
            self.cont_head(feat).squeeze(-1), cont_target, reduction="none")
        if c.prior_heads:  # the heads also read the prior's features, as in imagination; the dynamics learn from it
            prior_feat = self.rssm.feat(prior)
            losses["loss_prior_reward"] = -c.prior_heads * TwoHot(
                self.reward_head(prior_feat), self.bins, self.raw_reward).log_prob(batch["reward"].float())
            losses["loss_prior_cont"] = c.prior_heads * F.binary_cross_entropy_with_logits(
                self.cont_head(prior_feat).squeeze(-1), cont_target, reduction="none")
        prediction = sum(losses.values())
        dyn_kl, _, dyn, rep = kl_balance(post["logits"], prior["logits"], c.free_nats)
        total = (prediction + c.dyn_scale * dyn + c.rep_scale * rep).mean()
        values = {f"world_model/{k}": v.mean() for k, v in losses.items()}
        values.update({
            "world_model/loss": total,
            "world_model/loss_dyn": dyn.mean(),
            "world_model/loss_rep": rep.mean(),
            "world_model/kl": dyn_kl.mean(),
        })
        with torch.no_grad():  # metrics only
            values["world_model/post_entropy"] = CategoricalLatent(post["logits"], 0.0).entropy().mean()
            values["world_model/prior_entropy"] = CategoricalLatent(prior["logits"], 0.0).entropy().mean()
        return total, values

    def update(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step on the world-model loss, with gradient-norm clipping."""
        return self.update_and_states(batch)[0]

    def update_and_states(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, float], State]:
        """``update`` that also returns the posterior states, where agents start imagining."""
        self._check(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss, values, post = self._terms(batch)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(list(self.parameters()))
        values["world_model/grad_norm"] = nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        metrics = _to_floats(values)  # the one wait for the device in this update
        if not math.isfinite(metrics["world_model/loss"]):
            raise FloatingPointError(f"world-model loss is {metrics['world_model/loss']}; metrics: {metrics}")
        self.optimizer.step()
        return metrics, post

    # --- inspection -----------------------------------------------------------------------
    @torch.no_grad()
    def report(self, batch: Mapping[str, torch.Tensor], context: int = 5) -> dict[str, torch.Tensor]:
        """Open-loop prediction: observe the first ``context`` steps, predict the rest from actions alone.

        Returns, per image key, uint8 videos [B, T, H, W, C] ``openloop/<key>_true``, ``_pred``
        (reconstructions for the context, predictions after it) and ``_error``; per vector key,
        per-step mean squared errors [T - context] of the prediction (``openloop/<key>_mse``)
        and of copying the last observed vector (``openloop/<key>_copy_mse``).
        """
        _, steps = self._check(batch)
        if not 0 < context < steps:
            raise ValueError(f"context must be between 1 and {steps - 1} for sequences of {steps} steps, got {context}")
        embed = self.encoder({k: batch[k] for k in self.keys})
        action = batch["action"].float()
        post, _ = self.rssm.observe(embed[:, :context], action[:, :context], batch["is_first"][:, :context],
                                    sample=False)
        start = {k: v[:, -1] for k, v in post.items()}
        prior = self.rssm.open_loop(start, action[:, context - 1 : -1])
        feat = torch.cat([self.rssm.feat(post), self.rssm.feat(prior)], 1)
        pred = self.decode(feat)
        out: dict[str, torch.Tensor] = {}
        for key in self.encoder.cnn_keys:
            true = batch[key]
            image = pred[key]
            out[f"openloop/{key}_true"] = true
            out[f"openloop/{key}_pred"] = image
            out[f"openloop/{key}_error"] = ((image.float() - true.float()) / 2 + 127.5).to(torch.uint8)
        for key in self.encoder.mlp_keys:
            true = batch[key].float()[:, context:]
            guess = pred[key][:, context:]
            copy = batch[key].float()[:, context - 1 : context].expand_as(true)
            out[f"openloop/{key}_mse"] = (guess - true).square().mean((0, 2))
            out[f"openloop/{key}_copy_mse"] = (copy - true).square().mean((0, 2))
        return out

    # --- weights --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and optimiser state with a format version; atomic (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "config": dataclasses.asdict(self.config),
            "obs_space": {k: list(v) for k, v in self.obs_space.items()}, "action_dim": self.action_dim,
            "weights": self.state_dict(), "optimizer": self.optimizer.state_dict(),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    @staticmethod
    def read(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a weights file, or raise CheckpointError saying why it cannot be used."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"no world-model file at '{path}'") from None
        except Exception as error:  # torch raises many types for a damaged file
            raise CheckpointError(
                f"'{path}' is not a readable world-model file ({type(error).__name__}: {error})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"'{path}' is not a Forethought world-model file")
        if payload.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"'{path}' has format version {payload.get('format_version')}; "
                                  f"this Forethought reads version {FORMAT_VERSION}")
        return payload

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WorldModel:
        """Build the model a weights file describes and load it."""
        payload = cls.read(path)
        model = cls(payload["obs_space"], payload["action_dim"], WorldModelConfig(**payload["config"]))
        model.load(path, payload)
        return model

    def load(self, path: str | os.PathLike[str], payload: dict[str, Any] | None = None) -> None:
        """Load weights and optimiser state; a file of another size or space says which shapes differ."""
        payload = payload or self.read(path)
        ours = self.state_dict()
        theirs = payload["weights"]
        problems = [f"{k} is {list(v.shape)} in the file but {list(ours[k].shape)} here"
                    for k, v in theirs.items() if k in ours and v.shape != ours[k].shape]
        missing = sorted(set(ours) - set(theirs))
        extra = sorted(set(theirs) - set(ours))
        if problems or missing or extra:
            differ = {k: (v, dataclasses.asdict(self.config)[k]) for k, v in payload["config"].items()
                      if dataclasses.asdict(self.config).get(k) != v}
            parts = problems[:5] + ([f"missing here: {extra[:5]}"] if extra else []) + (
                [f"missing in the file: {missing[:5]}"] if missing else [])
            raise CheckpointError(
                f"'{path}' holds a different world model: {'; '.join(parts)}"
                + (f" (config file vs here: {differ})" if differ else "")
                + (f" (observations file vs here: {payload['obs_space']} vs {self.obs_space})"
                   if {k: tuple(v) for k, v in payload["obs_space"].items()} != self.obs_space else "")
            )
        self.load_state_dict(theirs)
        self.optimizer.load_state_dict(payload["optimizer"])


def _to_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detached scalar tensors -> floats, with one device-to-host copy for all of them."""
    return dict(zip(values, torch.stack([v.detach().float() for v in values.values()]).tolist(), strict=True))


def kl_balance(post_logits: torch.Tensor, prior_logits: torch.Tensor, free_nats: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DreamerV3's KL balancing with free bits.

    The dynamics loss KL(sg(post) || prior) trains only the prior; the representation loss
    KL(post || sg(prior)) trains only the posterior. Each is clipped below at ``free_nats``, so
    steps already within that many nats give no gradient. Returns (dyn_kl, rep_kl, dyn, rep).
    """
    # the logits in states are already mixed with the uniform distribution: no second mix here, and one
    # log-softmax per side serves both terms (they differ only in where the gradient goes)
    if post_logits.shape != prior_logits.shape:
        raise ValueError(f"kl_balance needs post and prior logits of one shape, got {tuple(post_logits.shape)} "
                         f"and {tuple(prior_logits.shape)}")
    post, prior = torch.log_softmax(post_logits, -1), torch.log_softmax(prior_logits, -1)
    post_probs = post.exp()
    dyn_kl = (post_probs.detach() * (post.detach() - prior)).sum((-2, -1))
    rep_kl = (post_probs * (post - prior.detach())).sum((-2, -1))
    return dyn_kl, rep_kl, dyn_kl.clamp(min=free_nats), rep_kl.clamp(min=free_nats)
