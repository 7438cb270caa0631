"""Learner updates per second of shipped presets, through the path training uses (``learner_group.update``),
for this checkout and, optionally, an earlier commit of it, side by side in one run.

Each side is a worker process started from its own source tree (this checkout, or a git worktree of
``--baseline REV``), so that both import their own ``forethought``; the driver alternates them, one
at a time, the order flipping every repeat. A worker builds the preset's RLlib algorithm (no env
runners) and times ``learner_group.update`` on one fixed batch of real env steps (random actions,
the replay's layout, the same seed on every side). It uses only interfaces that earlier commits
have too: ``load_config``, ``algorithm_config``, ``register_env``, ``replay_spec`` and ``envs.make``.

The worker speaks on its stdin and stdout: ``time N`` answers the seconds N updates took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _batch(config: Any, seed: int) -> dict[str, Any]:
    """B sequences of T env steps with random actions, in the replay's layout (Dreamer's)."""
    import numpy as np
    import torch

    import envs
    from forethought.config import env_kwargs
    from forethought.spaces import action_spec

    env = envs.make(**env_kwargs(config))
    spec = action_spec(env.action_space)
    env.action_space.seed(seed)
    b, t = config.train.batch_size, config.train.batch_length
    rows: dict[str, list[Any]] = {}
    obs, _ = env.reset(seed=seed)
    reward, first = 0.0, True
    for _ in range(b * t):
        action = env.action_space.sample()
        step = {**obs, "action": spec.from_env(torch.as_tensor(np.asarray(action))).numpy(), "reward": reward,
                "is_first": first, "is_terminal": False}
        obs, reward, terminated, truncated, _ = env.step(action)
        first = terminated or truncated
        step["is_terminal"] = False
        for key, value in step.items():
            rows.setdefault(key, []).append(value)
        if first:
            obs, _ = env.reset()
            reward = 0.0
    env.close()
    return {k: np.asarray(v, dtype=np.float32 if k in ("action", "reward") else None).reshape(b, t, *np.shape(v[0]))
            for k, v in rows.items()}


def worker(preset: str, overrides: list[str], threads: int, seed: int) -> None:
    """Build the algorithm of ``preset`` (names joined by commas stack) in this process's source tree and time
    updates on request."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import logging

    import ray
    import torch
    from ray.rllib.policy.sample_batch import SampleBatch

    from forethought.config import load_config
    from forethought.train import algorithm_config, register_env

    logging.getLogger("ray").setLevel(logging.ERROR)  # RLlib's start-up notes, once per side
    config = load_config(preset.split(","), [*overrides, "scale.num_env_runners=0", "run.wandb=disabled"])
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 2**20, logging_level="ERROR")
    register_env()
    algo = algorithm_config(config).build_algo()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    batch = _batch(config, seed)
    parameters = sum(p.numel() for p in algo.learner_group._learner.module["default_policy"].parameters())

    def update() -> None:
        algo.learner_group.update(batch=SampleBatch(dict(batch)).as_multi_agent(), timesteps={"env_steps": 1})

    begin = time.perf_counter()
    update()  # the first update (a compiled side compiles here)
    first = time.perf_counter() - begin
    print(json.dumps({"ready": True, "parameters": parameters, "first_update_s": first,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["time"]:
            break
        begin = time.perf_counter()
        for _ in range(int(words[1])):
            update()
        print(json.dumps({"seconds": time.perf_counter() - begin}), flush=True)
    algo.stop()
    ray.shutdown()


class Side:
    """A worker process of one source tree and one setting."""

    def __init__(self, tree: Path, preset: str, overrides: list[str], threads: int, seed: int = 0):
        env = {**os.environ, "PYTHONPATH": str(tree), "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": str(threads)}
        # the worker's stderr (Ray's and RLlib's start-up notes) is kept off the console, and shown if it fails
        self.stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", preset, str(threads), str(seed),
             *overrides], cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True)
        self.info = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        code = self.process.wait()
        self.stderr.seek(0)
        raise RuntimeError(f"a learner-timing worker stopped (exit {code}); its stderr ends:\n"
                           f"{self.stderr.read()[-3000:]}\nrun it by hand: "
                           f"{' '.join(self.process.args)}")  # type: ignore[arg-type]

    def time(self, updates: int) -> float:
        """Updates per second over ``updates`` updates."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"time {updates}\n")
        self.process.stdin.flush()
        return updates / self._answer()["seconds"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=120)
        self.stderr.close()


def worktree(rev: str) -> Path:
    """A git worktree of ``rev`` beside the checkout (made once, reused)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"forethought-baseline-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def run_presets(presets: list[str], baseline: str | None, compiled: bool, threads: int, repeats: int, updates: int,
                quick: bool, variants: list[tuple[str, str]] | None = None, results: str | None = None) -> None:
    """Time each preset eager (and compiled) here, and eager at ``baseline``, alternating; print and write JSON.
    ``variants`` (name, space-separated overrides) add sides of this checkout with those overrides on the preset
    (compiled with ``compiled``), e.g. a smaller model; their results go to ``update_speed_variants``."""
    from benchmarks.common import print_table, spread, write_results

    trees = {"here": ROOT, **({f"baseline {baseline}": worktree(baseline)} if baseline else {})}
    rows, table = [], []
    for preset in presets:
        # this checkout's sides name the switch; an older commit may not know it (it has no compile switch)
        settings = [(name, tree, ["train.compile=false"] if tree == ROOT else []) for name, tree in trees.items()]
        settings[0] = ("here eager", *settings[0][1:])
        if compiled:
            settings.insert(1, ("here compiled", ROOT, ["train.compile=true"]))
        settings += [(f"here {name}", ROOT, [f"train.compile={str(compiled).lower()}", *extra.split()])
                     for name, extra in variants or []]
        stack = f"{preset},debug" if quick else preset  # --quick: the debug sizes, a smoke test of the machinery
        sides = {name: Side(tree, stack, over, threads) for name, tree, over in settings}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for repeat in range(repeats):
            for name in (list(sides) if repeat % 2 == 0 else list(sides)[::-1]):
                rates[name].append(sides[name].time(updates))
            print(f"{preset} repeat {repeat + 1}/{repeats}: "
                  + ", ".join(f"{n} {r[-1]:.3g}/s" for n, r in rates.items()), flush=True)
        for side in sides.values():
            side.close()
        base = next((name for name in sides if name.startswith("baseline")), None)
        for name, side in sides.items():
            row = {"preset": preset, "side": name, "parameters": side.info["parameters"], "threads": threads,
                   "first_update_s": side.info["first_update_s"], "updates_per_s": spread(rates[name])}
            if base:
                row["over_baseline"] = spread([a / b for a, b in zip(rates[name], rates[base], strict=True)])
            rows.append(row)
            table.append({"preset": preset, "side": name, "params": f"{row['parameters']:,}",
                          "updates/s": f"{row['updates_per_s']['median']:.3g}",
                          "range": f"{row['updates_per_s']['min']:.3g}-{row['updates_per_s']['max']:.3g}",
                          "first update s": f"{row['first_update_s']:.1f}",
                          "over baseline": f"{row['over_baseline']['median']:.2f}x" if base else "-"})
    print()
    print_table(table, ["preset", "side", "params", "updates/s", "range", "first update s", "over baseline"])
    print(f"\n{threads} torch thread(s), {repeats} repeats x {updates} updates per side, sides alternating; "
          "excluded: Ray start, algorithm build and the first update (compile time, shown)")
    name = results or ("update_speed_variants" if variants else "update_speed_presets")
    path = write_results(f"{name}-quick" if quick else name, rows, {
        "baseline": baseline, "variants": dict(variants or []), "threads": threads, "repeats": repeats,
        "updates_per_repeat": updates,
        "path": "learner_group.update on a fixed batch of random-action env steps, no env runners",
        "excluded": "Ray start, algorithm build, the first update (compile time, in first_update_s)"})
    print(f"wrote {path}")


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(sys.argv[2], sys.argv[5:], int(sys.argv[3]), int(sys.argv[4]))
