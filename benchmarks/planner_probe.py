"""Probe a planner checkpoint on a vector grid task: which goals does it pick, and does its worker reach them?

Plays greedy episodes (the planner's search picks each goal, the worker its most likely action; exploring ones
with ``--explore``) and, for every option (a goal held for K steps), reads the goal's grid cell and task flags
from the world model's decoding of it (the vector tasks' first columns are the agent's column and row one-hot,
their last the key-carried / door-open flags) and measures:

- ``reached``: share of options in which the agent stands on the goal's cell at some step of the option;
- ``start_distance`` / ``end_distance``: mean grid (Manhattan) distance from the agent to the goal's cell at
  the option's start and end (a worker that steers brings the second below the first);
- ``predicted_end``: the temporal distance's expected steps to the goal at the option's end;
- ``value_gain``: the task value of the goal's landmark minus the value of the state it was picked in (a
  search that climbs the value picks goals above the current state);
- ``flag_ahead``: share of options whose goal carries a task flag (key carried, door open) that the agent's
  state does not have yet: goals one stage further along the task;
- ``layout_match``: share of options whose goal shows the episode's own layout (the goal's cell and the doors'
  rows, which each episode draws anew): a goal decoded with another episode's layout lies in a world the agent
  is not in, and no worker can reach it;
- ``landmark_layout_match``: the same share over all the planner's landmarks, from the episode's first state;
- ``farther``: the temporal distance's probability that the goal lies beyond ``most`` steps, at the option's
  start;
- ``value_stage0`` / ``1`` / ``2``: the task value's mean at the states of the episodes with 0, 1 and 2 task flags
  set (a value that has learned the task rises with the stage; absent where no state reached the stage);
- ``success`` and ``length``: the greedy episodes' success rate and mean length.

    python -m benchmarks.planner_probe RUN_DIR [--checkpoint CHECKPOINT_DIR] [--episodes 10] [--explore]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def load_planner(run_dir: Path, checkpoint: Path | None = None) -> tuple[Any, Any, Any]:
    """The run's config, its planner with the weights of ``checkpoint`` (default: the latest) and its env."""
    from benchmarks.director_probe import load_agent
    from forethought.evaluate import make_env

    config, agent = load_agent(run_dir, checkpoint, name="planner")
    return config, agent, make_env(config)


def grid_shape(env: Any) -> tuple[int, int]:
    """(width, height) of a built-in vector grid task."""
    inner = env.unwrapped
    if hasattr(inner, "size"):
        return inner.size, inner.size
    if hasattr(inner, "width"):
        return inner.width, inner.height
    raise SystemExit("the probe reads the built-in key-door and key-chain vector tasks only")


def decode_cell(vector: np.ndarray, width: int, height: int) -> tuple[tuple[int, int], np.ndarray]:
    """The agent's cell and the task flags (the vector's last entries: key carried, door open) of a decoded
    observation."""
    return (int(vector[:width].argmax()), int(vector[width : width + height].argmax())), vector[-2:] > 0.5


def layout(vector: np.ndarray, env: Any) -> tuple[int, ...]:
    """The layout an observation vector shows: the goal's column and row and each door's row (key-door and key
    chain tasks; the keys' cells are left out: a carried key leaves the grid)."""
    inner, width, height = env.unwrapped, *grid_shape(env)
    if hasattr(inner, "keys"):  # the key chain: agent, keys, goal (columns and rows), then each door's row
        start = (1 + len(inner.keys)) * (width + height)
        doors = [vector[start + width + height + d * height:][:height] for d in range(inner.doors)]
    else:  # key door: seven one-hot blocks of ``size`` (agent, key, goal columns and rows), the door's row
        start, doors = 4 * width, [vector[6 * width : 7 * width]]
    goal = vector[start : start + width + height]
    return (int(goal[:width].argmax()), int(goal[width:].argmax()), *(int(d.argmax()) for d in doors))


@torch.no_grad()
def probe(agent: Any, env: Any, episodes: int, seed: int = 0, explore: bool = False) -> dict[str, float]:
    """The measures of the module docstring over ``episodes`` greedy episodes."""
    torch.manual_seed(seed)
    width, height = grid_shape(env)
    key = next(iter(env.observation_space.spaces))
    options: list[dict[str, Any]] = []
    successes, lengths, matches = [], [], []  # type: list[float], list[int], list[float]
    stages: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state = agent.initial_state(1)
        first, done, steps, total = True, False, 0, 0.0
        own_layout = layout(np.asarray(obs[key]), env)
        current: dict[str, Any] = {}
        while not done:
            batch = {k: torch.as_tensor(np.asarray(v)).unsqueeze(0) for k, v in obs.items()}
            new = bool(first or int(state["steps_left"][0]) <= 0)
            action, state = agent.act(batch, state, explore=explore, is_first=torch.tensor([first]))
            stage = int((np.asarray(obs[key])[-2:] > 0.5).sum())
            stages[stage].append(float(agent.task_value.value(agent.world_model.rssm.feat(state)[:1])[0]))
            pos = tuple(env.unwrapped.pos)
            if new:
                if current:  # the state now is where the last option ended
                    current["predicted_end"] = float(agent.distance.expected(
                        agent.goal_state(state["deter"]), current.pop("goal"))[0])
                    options.append(current)
                goal = state["goal"]
                decoded = agent.goal_observation(goal)[key][0].numpy()
                cell, flags = decode_cell(decoded, width, height)
                landmarks = agent.landmarks.filled()
                if first:
                    seen = agent.goal_observation(agent.landmark_goal(torch.arange(len(landmarks))))[key].numpy()
                    matches.extend(float(layout(v, env) == own_layout) for v in seen)
                logits = agent.distance.logits(agent.goal_state(state["deter"]), goal)
                index = (agent.landmark_goal(torch.arange(len(landmarks))) - goal).norm(dim=-1).argmin()
                value = agent.task_value.value(agent.world_model.rssm.feat(state)[:1])[0]
                own = np.asarray(obs[key])[-2:] > 0.5
                current = {"reached": 0.0, "start_distance": float(abs(pos[0] - cell[0]) + abs(pos[1] - cell[1])),
                           "value_gain": float(agent.task_value.value(landmarks[index : index + 1])[0] - value),
                           "flag_ahead": float((flags & ~own).any()), "cell": cell, "goal": goal,
                           "layout_match": float(layout(decoded, env) == own_layout),
                           "farther": float(logits.softmax(-1)[0, -1])}
            obs, reward, terminated, truncated, _ = env.step(action[0].numpy())
            pos = tuple(env.unwrapped.pos)
            distance = abs(pos[0] - current["cell"][0]) + abs(pos[1] - current["cell"][1])
            current["reached"] = max(current["reached"], float(distance == 0))
            current["end_distance"] = float(distance)
            first, steps, total = False, steps + 1, total + float(reward)
            done = terminated or truncated
        current.pop("goal")
        options.append(current)
        successes.append(float(total > 0))
        lengths.append(steps)
    out = {name: float(np.mean([o[name] for o in options if name in o]))
           for name in ("reached", "start_distance", "end_distance", "predicted_end", "value_gain", "flag_ahead",
                         "layout_match", "farther")}
    return {**out, "landmark_layout_match": float(np.mean(matches)), "options": float(len(options)),
            **{f"value_stage{k}": float(np.mean(v)) for k, v in stages.items() if v},
            "success": float(np.mean(successes)),
            "length": float(np.mean(lengths))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a planner run folder")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoints/step_* folder (default: the latest)")
    parser.add_argument("--episodes", type=int, default=10, help="greedy episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--explore", action="store_true", help="exploring episodes instead of greedy ones")
    args = parser.parse_args()
    _, agent, env = load_planner(args.run_dir, args.checkpoint)
    print(json.dumps(probe(agent, env, args.episodes, args.seed, args.explore), indent=1))


if __name__ == "__main__":
    main()
