"""Full agent updates per second, ours against RLlib's DreamerV3 learner, side by side in one process.

One update is everything a DreamerV3 learner does per replayed batch: a world-model step, imagination
of ``--horizon`` steps from every posterior state, and the actor and critic steps (plus the slow
critic's EMA). Both sides get the same synthetic batch of B x T steps of 64 x 64 x 3 uint8 images
and 5 discrete actions (the Pin Pad observation), in the dict format that RLlib's
``DreamerV3.training_step`` hands to ``LearnerGroup.update``. Each timed update starts from that
numpy dict on both sides: RLlib's learner converts it itself, ours converts it to torch tensors
(inside the timed region, so both sides pay for their input). RLlib's torch DreamerV3 cannot take
uint8 images (its CNN fails on them), so its side gets the same images as float32 in [-1, 1], the
form RLlib's own image wrapper (``NormalizedImageEnv``) stores in its replay buffer; ours gets uint8.

RLlib runs at one of its model sizes (``--size``, default XS). Ours runs twice: at the published-style
preset with one or two widths changed so that the parameter counts (all parameters, the slow/EMA
critic included on both sides) are within 10% (the script fails if they are not), and at RLlib's own
architecture, read from RLlib's size tables: the same CNN depth (4 stride-2 convolutions of d, 2d, 4d,
8d channels), the same recurrent width (a dense GRU of the same units after a layer of the same
width), the same latent layout (categoricals x classes) and the same MLP widths and depths. Every
side's multiply-accumulates per update are counted once (``torch.utils.flop_counter``, forward and
backward, outside the timed updates). All sides run eagerly with the same torch thread count;
``--compiled`` adds our two sides compiled (``agent.compile_networks()``, compile time in the warm-up).
The first ``--warmup`` updates of each side (and the Ray start and algorithm build) are excluded; then
the sides alternate, their order flipping every repeat, each repeat timing ``--updates`` updates per side.

    python -m benchmarks.update_speed                     # XS, 5 repeats of 3 updates per side
    python -m benchmarks.update_speed --quick             # XXS, 2 repeats of 1 update
    python -m benchmarks.update_speed --size S --device cuda --threads 4 --compiled
    python -m benchmarks.update_speed --presets keydoor_vector cartpole --baseline 1404872 --compiled
    python -m benchmarks.update_speed --presets keydoor_vector --compiled --variant deter128 agent.world_model.deter=128
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from benchmarks.common import print_table, spread, write_results

#: RLlib model size -> our world-model preset, its changed fields and the actor-critic width, chosen
#: so that the two parameter counts are within 10% (XXS: +1.8%, XS: -0.3%, S: +0.7%).
MATCHED: dict[str, tuple[str, dict[str, int], int]] = {
    "XXS": ("12M", {"deter": 384, "units": 128}, 128),
    "XS": ("12M", {"deter": 1024}, 256),
    "S": ("25M", {"deter": 1536}, 384),
}
TOLERANCE = 0.10
ACTIONS = 5
ENV_NAME = "forethought-update-speed-pinpad4"


def _sample(batch: int, length: int) -> dict[str, Any]:
    """A replay sample as ``DreamerV3.training_step`` builds it, for a Discrete(ACTIONS) env."""
    import numpy as np
    from ray.rllib.utils.numpy import one_hot

    rng = np.random.default_rng(0)
    actions_ints = rng.integers(0, ACTIONS, (batch, length))
    flags = np.zeros((batch, length), dtype=bool)
    is_first, is_last = flags.copy(), flags.copy()
    is_first[:, 0] = True
    is_last[:, -1] = True
    return {"obs": rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8),
            "actions": one_hot(actions_ints, depth=ACTIONS), "actions_ints": actions_ints,
            "rewards": rng.standard_normal((batch, length)).astype(np.float32),
            "is_first": is_first, "is_last": is_last, "is_terminated": flags.copy(), "is_truncated": flags.copy()}


def _ours_batch(sample: dict[str, Any], device: str) -> dict[str, Any]:
    """Our agent's batch [B, T, ...] from the same sample."""
    import torch

    pairs = {"image": "obs", "action": "actions", "reward": "rewards", "is_first": "is_first",
             "is_terminal": "is_terminated"}
    return {ours: torch.from_numpy(sample[theirs]).to(device) for ours, theirs in pairs.items()}


def _count(module: Any, skip: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for name, p in module.named_parameters() if not any(s in name for s in skip))


def rllib_architecture(size: str) -> tuple[dict[str, int], int, int]:
    """Our world-model fields, actor-critic units and layers for RLlib's DreamerV3 at ``size``, from RLlib's
    own size tables."""
    from ray.rllib.algorithms.dreamerv3 import utils

    units, layers = utils.get_dense_hidden_units(size), utils.get_num_dense_layers(size)
    fields = {"depth": utils.get_cnn_multiplier(size), "deter": utils.get_gru_units(size), "blocks": 1,
              "hidden": units, "stoch": utils.get_num_z_categoricals(size), "classes": utils.get_num_z_classes(size),
              "units": units, "layers": layers}
    return fields, units, layers


def build_ours(size: str, batch_device: str, horizon: int, matched: str = "parameters") -> tuple[Any, dict[str, Any]]:
    """Our DreamerAgent matched to RLlib's ``size`` by parameter count or, with ``matched='architecture'``,
    layer by layer."""
    import torch

    from agents.actions import ActionSpec
    from agents.actor_critic import ActorCriticConfig
    from agents.dreamer import DreamerAgent, DreamerConfig
    from world_models.config import sized

    if matched == "architecture":
        changes, units, layers = rllib_architecture(size)
        preset = "12M"
    else:
        preset, changes, units = MATCHED[size]
        layers = ActorCriticConfig().layers
    torch.manual_seed(0)
    config = DreamerConfig(world_model=sized(preset, **changes),
                           actor_critic=ActorCriticConfig(units=units, layers=layers), horizon=horizon)
    agent = DreamerAgent({"image": (64, 64, 3)}, ActionSpec.discrete(ACTIONS), config).to(batch_device)
    described = ", ".join(f"{k}={v}" for k, v in changes.items())
    return agent, {"model": f"sized({preset!r}, {described}), actor-critic {layers} x {units} units",
                   "matched": matched, "world_model_preset": preset, "world_model_changes": changes,
                   "actor_critic_units": units, "actor_critic_layers": layers, "parameters": _count(agent),
                   "parameters_without_slow_critic": _count(agent, ("slow_critic.",))}


def macs_per_update(step: Any) -> int:
    """Multiply-accumulates of one call of ``step`` (matrix products and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() // 2


def build_rllib(size: str, batch: int, length: int, horizon: int, device: str) -> tuple[Any, dict[str, Any]]:
    """RLlib's DreamerV3 algorithm (local learner, no remote env runners) on a Pin Pad env."""
    import gymnasium as gym
    import numpy as np
    from ray.rllib.algorithms.dreamerv3 import DreamerV3Config
    from ray.rllib.core import DEFAULT_MODULE_ID
    from ray.rllib.env.wrappers.atari_wrappers import NormalizedImageEnv
    from ray.tune.registry import register_env

    def make_env(_config: Any) -> gym.Env:
        import envs  # noqa: F401  (registers the forethought/ ids)

        return NormalizedImageEnv(gym.make("forethought/PinPad4-v0"))  # RLlib's learner needs float images

    register_env(ENV_NAME, make_env)
    config = (DreamerV3Config()
              .environment(ENV_NAME)
              .env_runners(num_env_runners=0)
              .learners(num_learners=0, num_gpus_per_learner=1 if device.startswith("cuda") else 0)
              .training(model_size=size, batch_size_B=batch, batch_length_T=length, horizon_H=horizon)
              .debugging(seed=0))
    algo = config.build_algo()
    spaces = make_env(None)
    assert isinstance(spaces.action_space, gym.spaces.Discrete) and spaces.action_space.n == ACTIONS, (
        f"expected Discrete({ACTIONS}) actions, got {spaces.action_space}")
    assert spaces.observation_space.shape == (64, 64, 3), spaces.observation_space
    assert spaces.env.observation_space.dtype == np.uint8, spaces.env.observation_space

    def counts(learner: Any) -> tuple[int, int]:
        module = learner.module[DEFAULT_MODULE_ID]
        return _count(module), _count(module, ("_ema.",))

    (total, without_ema), *_ = [r.get() for r in algo.learner_group.foreach_learner(counts)]  # one local learner
    return algo, {"model": f"DreamerV3Config model_size={size!r}", "model_size": size, "parameters": total,
                  "parameters_without_slow_critic": without_ema}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="XXS, 2 repeats of 1 update (a smoke test)")
    parser.add_argument("--size", choices=sorted(MATCHED), help="RLlib model size (default XS; XXS with --quick)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch, B (default 16)")
    parser.add_argument("--length", type=int, default=64, help="steps per sequence, T (default 64)")
    parser.add_argument("--horizon", type=int, default=15, help="imagination horizon (default 15)")
    parser.add_argument("--repeats", type=int, help="timed repeats per side (default 5; 2 with --quick)")
    parser.add_argument("--updates", type=int, help="updates per side per repeat (default 3; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates per side first (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's own)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    parser.add_argument("--presets", nargs="+", metavar="PRESET",
                        help="instead of the RLlib comparison: time these shipped presets through learner_group.update"
                             " (eager, and compiled with --compiled), e.g. keydoor_vector cartpole pinpad_vector "
                             "pinpad_vector_director")
    parser.add_argument("--baseline", metavar="REV", help="with --presets: also time commit REV (a git worktree)")
    parser.add_argument("--compiled", action="store_true", help="also time our sides compiled (with --presets: "
                        "train.compile=true)")
    parser.add_argument("--variant", nargs=2, action="append", default=[], metavar=("NAME", "OVERRIDES"),
                        help="with --presets: also time this checkout with these space-separated overrides on the "
                             "preset, e.g. --variant deter128 'agent.world_model.deter=128' (repeatable; results in "
                             "update_speed_variants-*.json)")
    parser.add_argument("--name", help="with --presets: the results file's name (default update_speed_presets, or "
                        "update_speed_variants with --variant), e.g. update_speed_precision")
    args = parser.parse_args()
    if args.variant and not args.presets:
        parser.error("--variant needs --presets (it changes a preset)")
    if args.presets:
        from benchmarks.learner_timing import run_presets

        run_presets(args.presets, args.baseline, args.compiled, args.threads or 1, args.repeats or (2 if args.quick
                    else 5), args.updates or (2 if args.quick else 5), args.quick,
                    [(name, extra) for name, extra in args.variant], args.name)
        return

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import numpy as np
    import ray
    import torch
    from ray.rllib.policy.sample_batch import SampleBatch
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no GPU")
    size = args.size or ("XXS" if args.quick else "XS")
    repeats = args.repeats or (2 if args.quick else 5)
    updates = args.updates or (1 if args.quick else 3)

    start = time.perf_counter()
    ray.init(address="local", num_cpus=2, num_gpus=1 if device.startswith("cuda") else 0, include_dashboard=False,
             object_store_memory=256 * 2**20, log_to_driver=False)
    algo, theirs = build_rllib(size, args.batch, args.length, args.horizon, device)
    agents = {"forethought": build_ours(size, device, args.horizon),
              "forethought arch": build_ours(size, device, args.horizon, "architecture")}
    if args.compiled:
        for name in list(agents):
            agent, record = build_ours(size, device, args.horizon, agents[name][1]["matched"])
            agent.compile_networks()
            agents[f"{name} compiled"] = agent, {**record, "compiled": True}
    setup = time.perf_counter() - start
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    ours = agents["forethought"][1]
    gap = ours["parameters"] / theirs["parameters"] - 1
    print(f"parameters: ours {ours['parameters']:,} ({ours['model']}), RLlib {theirs['parameters']:,} "
          f"({theirs['model']}): {gap:+.1%}; architecture-matched ours {agents['forethought arch'][1]['parameters']:,}",
          flush=True)
    if abs(gap) > TOLERANCE:
        raise SystemExit(f"parameter counts differ by {gap:+.1%}, more than {TOLERANCE:.0%}: fix MATCHED[{size!r}]")

    sample = _sample(args.batch, args.length)
    # RLlib's torch DreamerV3 fails on uint8 images ("expected scalar type Byte but found Float"): its
    # buffer holds them as NormalizedImageEnv makes them, float32 in [-1, 1]; ours holds the uint8 images.
    rllib_sample = {**sample, "obs": sample["obs"].astype(np.float32) / 128.0 - 1.0}
    timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: args.batch * args.length}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step_rllib() -> None:
        algo.learner_group.update(batch=SampleBatch(dict(rllib_sample)).as_multi_agent(), timesteps=timesteps)

    sides = {name: ((lambda agent=agent: agent.update(_ours_batch(sample, device))), record)
             for name, (agent, record) in agents.items()}
    sides["rllib"] = (step_rllib, theirs)
    for name, (step, record) in sides.items():
        begin = time.perf_counter()
        for _ in range(args.warmup):
            step()
        sync()
        record["warmup_s"] = time.perf_counter() - begin
        record["macs_per_update"] = macs_per_update(step)  # eagerly: the counter sees through compiled code too
        print(f"warmed up {name}: {record['warmup_s']:.1f} s for {args.warmup} updates; "
              f"{record['macs_per_update'] / 1e9:.2f} G multiply-accumulates per update", flush=True)

    rates: dict[str, list[float]] = {name: [] for name in sides}
    for repeat in range(repeats):
        for name in (list(sides) if repeat % 2 == 0 else list(sides)[::-1]):
            step = sides[name][0]
            begin = time.perf_counter()
            for _ in range(updates):
                step()
            sync()
            rates[name].append(updates / (time.perf_counter() - begin))
        print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(f"{n} {r[-1]:.3g}/s" for n, r in rates.items()),
              flush=True)
    ray.shutdown()

    rows = []
    for name, (_, record) in sides.items():
        paired = [a / b for a, b in zip(rates[name], rates["rllib"], strict=True)]
        rows.append({"side": name, "device": device, "batch": args.batch, "length": args.length,
                     "horizon": args.horizon, "threads": threads, "compiled": bool(record.get("compiled")), **record,
                     "updates_per_s": spread(rates[name]), "over_rllib": spread(paired)})
    table = [{"side": r["side"], "model": r["model"], "params": f"{r['parameters']:,}",
              "GMACs/update": f"{r['macs_per_update'] / 1e9:.2f}", "updates/s": f"{r['updates_per_s']['median']:.3g}",
              "range": f"{r['updates_per_s']['min']:.3g}-{r['updates_per_s']['max']:.3g}",
              "over RLlib": f"{r['over_rllib']['median']:.2f}x", "warm-up s": f"{r['warmup_s']:.1f}"} for r in rows]
    print()
    print_table(table, ["side", "model", "params", "GMACs/update", "updates/s", "range", "over RLlib", "warm-up s"])
    print(f"\n{device}, B={args.batch} T={args.length} H={args.horizon}, {threads} torch threads, {repeats} repeats x "
          f"{updates} updates per side, sides alternating; over RLlib: median of per-repeat ratios (targets: 2x at "
          f"matched parameters, 3x at RLlib's architecture); excluded: Ray start and build ({setup:.0f} s), "
          f"{args.warmup} warm-up updates per side (compile time included there)")
    path = write_results("update_speed-quick" if args.quick else "update_speed", rows, {
        "rllib_model_size": size, "parameter_gap": gap, "device": device,
        "parameters_counted": "all parameters, the slow (EMA) critic included on both sides",
        "macs_counted": "torch.utils.flop_counter over one update (forward and backward), FLOPs / 2",
        "batch": args.batch, "length": args.length, "horizon": args.horizon, "threads": threads,
        "repeats": repeats, "updates_per_repeat": updates, "warmup_updates": args.warmup, "setup_s": setup,
        "excluded": "Ray start, algorithm and agent build, warm-up updates",
        "observations": "ours uint8 [0, 255]; RLlib float32 [-1, 1] (NormalizedImageEnv), same images"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
