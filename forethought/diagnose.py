"""``forethought diagnose RUN_DIR``: what a trained agent's parts make of its own replay.

Learning can stall in several places: the world model may not predict the rewards it has seen, the
critic may not value states by the returns that followed them, the actor may stay uniform, or replay
may hold too little of the task. This reads a checkpoint's agent and replay (nothing is trained, no
Ray) and measures each on every stored step, in stream order, through the world model's posterior:

- reward head: its mean prediction on rewarded steps against the rest, and the share of rewarded steps
  it predicts at least half of;
- continuation head: its mean on terminal steps against the rest;
- critic (flat agents): its value against the discounted return that really followed each step (to the
  episode's end as stored; an episode cut by the time limit counts its rewards up to the cut), at episode
  starts and over all steps (correlation);
- actor (flat agents): its entropy on replayed states, against the most it can be;
- replay: steps, episodes, rewarded steps, distinct observations (how much of the task was seen).

The figures go to the console and to ``<run>/diagnose/<checkpoint>.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from forethought import loading, run_folder
from forethought.config import env_kwargs, load_config
from forethought.replay import STEP_KEYS


def lane_streams(path: Path) -> list[dict[str, np.ndarray]]:
    """Each replay lane's stored steps, oldest first, from a ``replay.npz``."""
    with np.load(path, allow_pickle=False) as archive:
        data = {k[len("data/"):]: archive[k] for k in archive.files if k.startswith("data/")}
        cursor, filled = archive["cursor"], archive["filled"]
    size = next(iter(data.values())).shape[1]
    streams = []
    for lane in range(len(cursor)):
        if filled[lane] == 0:
            continue
        order = (cursor[lane] - filled[lane] + np.arange(filled[lane])) % size
        streams.append({k: v[lane, order] for k, v in data.items()})
    return streams


def returns_to_go(reward: np.ndarray, is_first: np.ndarray, is_terminal: np.ndarray, discount: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(G, complete) per step of one stream: G_t = sum_k discount^(k-1) r_(t+k) over the rest of t's episode
    (``reward[t]`` is received on arriving at step t); ``complete`` is false where the episode runs past the
    stream's end, so that its return is not known."""
    n = len(reward)
    returns, complete = np.zeros(n), np.zeros(n, bool)
    running, known = 0.0, False
    for t in range(n - 1, -1, -1):
        returns[t], complete[t] = running, known
        if is_first[t]:  # the step before starts another episode: nothing flows back across
            running, known = 0.0, True
        else:
            running = float(reward[t]) + discount * running
            if is_terminal[t]:
                running, known = float(reward[t]), True
    return returns, complete


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def posterior(world_model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The posterior states [B, T, ...] of a batch of windows (torch tensors), without gradients; the first step of
    each window starts the model's context, as in sampled windows."""
    import torch

    batch = {**batch, "is_first": batch["is_first"].clone()}
    batch["is_first"][:, 0] = True
    with torch.no_grad():
        return world_model.observe(batch, sample=False)[0]


def world_model_outputs(world_model: Any, batch: dict[str, Any], critic: Any = None,
                        post: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predicted reward and continuation [B, T] on the posterior states of a batch of windows (``posterior``, or
    ``post`` where the caller has it), and with ``critic`` (an actor-critic, or the planner's task value) its value
    and, where it has an actor, the actor's entropy; torch tensors, without gradients."""
    import torch

    batch = {k: torch.as_tensor(v) for k, v in batch.items()}
    post = posterior(world_model, batch) if post is None else post
    with torch.no_grad():
        feat = world_model.rssm.feat(post)
        out = {"reward": world_model.reward(feat), "cont": world_model.cont(feat)}
        if critic is not None:
            out["value"] = critic.value(feat)
            if hasattr(critic, "policy"):
                out["entropy"] = critic.policy(feat).entropy()
    return out


def agent_outputs(agent: Any, stream: dict[str, np.ndarray], post: dict[str, Any] | None = None
                  ) -> dict[str, np.ndarray]:
    """Per step of a stream: predicted reward and continuation, and the task critic's value (``task_critic``) with,
    for flat agents, the actor's entropy, on the posterior states (``post``, [1, T, ...], where the caller has them)."""
    out = world_model_outputs(agent.world_model, {k: v[None] for k, v in stream.items()}, task_critic(agent), post)
    return {k: v[0].numpy().astype(np.float64) for k, v in out.items()}


def agent_lane_streams(agent: Any, path: Path) -> list[dict[str, np.ndarray]]:
    """``lane_streams`` of a replay with only what the agent's world model reads and the step flags."""
    keys = [*agent.world_model.keys, *STEP_KEYS]
    return [{k: stream[k] for k in keys} for stream in lane_streams(path)]


def diagnose(target: Path, step: int | None = None) -> dict[str, Any]:
    """The figures above for the checkpoint of ``target`` (a run folder, its newest checkpoint, or a checkpoint)."""
    import envs

    run_dir, checkpoint = run_folder.find_checkpoint(target, step)
    config = load_config([str(run_dir / "config.yaml")], [f"run.dir={run_dir}"])
    replay_path = checkpoint / "replay.npz"
    if not replay_path.exists():
        raise run_folder.CheckpointError(f"'{checkpoint}' holds no replay.npz: not a training checkpoint")
    env = envs.make(**env_kwargs(config))
    try:
        agent = loading.load_agent(checkpoint, config, env.observation_space, env.action_space)
        max_entropy = _max_entropy(env.action_space)
    finally:
        env.close()
    discount = agent_discount(agent)
    rows: dict[str, list[np.ndarray]] = {}
    distinct: set[bytes] = set()
    for stream in agent_lane_streams(agent, replay_path):
        outputs = agent_outputs(agent, stream)
        returns, complete = returns_to_go(stream["reward"], stream["is_first"], stream["is_terminal"], discount)
        for name, value in {**outputs, "true_reward": stream["reward"].astype(np.float64), "return": returns,
                            "complete": complete, "is_first": stream["is_first"].astype(bool),
                            "is_terminal": stream["is_terminal"].astype(bool)}.items():
            rows.setdefault(name, []).append(value)
        raw = np.concatenate([np.ascontiguousarray(stream[k]).reshape(len(returns), -1).view(np.uint8)
                              for k in agent.world_model.keys], 1)
        distinct.update(np.ascontiguousarray(raw).view(f"V{raw.shape[1]}").ravel().tolist())
    return _figures({k: np.concatenate(v) for k, v in rows.items()}, len(distinct), max_entropy, discount,
                    run_dir, checkpoint)


def task_critic(agent: Any) -> Any:
    """The part that values the task's return: the flat agent's actor-critic, the planner's task value, or None
    (Director, whose manager values a mix of reward streams)."""
    return getattr(agent, "actor_critic", None) or getattr(agent, "task_value", None)


def agent_discount(agent: Any) -> float:
    critic = task_critic(agent)
    return float(critic.config.discount) if critic is not None else 1 - 1 / 333


def _max_entropy(space: Any) -> float | None:
    n = getattr(space, "n", None)
    return math.log(int(n)) if n is not None else None


def _figures(r: dict[str, np.ndarray], distinct: int, max_entropy: float | None, discount: float, run_dir: Path,
             checkpoint: Path) -> dict[str, Any]:
    rewarded = r["true_reward"] != 0
    half = np.abs(r["reward"][rewarded]) >= 0.5 * np.abs(r["true_reward"][rewarded])
    report: dict[str, Any] = {
        "run": str(run_dir), "checkpoint": checkpoint.name, "discount": discount,
        "replay": {"steps": len(rewarded), "episodes_started": int(r["is_first"].sum()),
                   "rewarded_steps": int(rewarded.sum()), "rewarded_share": float(rewarded.mean()),
                   "distinct_observations": distinct},
        "reward_head": {"on_rewarded": _mean(r["reward"][rewarded]),
                        "true_on_rewarded": _mean(r["true_reward"][rewarded]),
                        "on_others": _mean(r["reward"][~rewarded]),
                        "rewarded_predicted_half": _mean(half.astype(np.float64))},
        "cont_head": {"on_terminal": _mean(r["cont"][r["is_terminal"]]),
                      "on_others": _mean(r["cont"][~r["is_terminal"]])},
    }
    if "value" in r:
        known = r["complete"]
        starts = known & r["is_first"]
        report["critic"] = {"value_at_starts": _mean(r["value"][starts]),
                            "return_at_starts": _mean(r["return"][starts]),
                            "value_mean": _mean(r["value"][known]), "return_mean": _mean(r["return"][known]),
                            "correlation": _correlation(r["value"][known], r["return"][known])}
        if "entropy" in r:
            report["actor"] = {"entropy": _mean(r["entropy"]), "max_entropy": max_entropy}
    return report


def format_diagnosis(report: dict[str, Any]) -> str:
    """The report as aligned lines: one per figure, grouped by part."""
    lines = [f"{report['run']} at {report['checkpoint']} (discount {report['discount']:.4g})"]
    for part, figures in report.items():
        if isinstance(figures, dict):
            lines.append(f"  {part}")
            for name, value in figures.items():
                shown = "-" if value is None else (f"{value:,}" if isinstance(value, int) else f"{value:.4g}")
                lines.append(f"    {name:<26} {shown}")
    return "\n".join(lines)


def write_diagnosis(report: dict[str, Any]) -> Path:
    path = Path(report["run"]) / "diagnose" / f"{report['checkpoint']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path
