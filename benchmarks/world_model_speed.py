"""World-model updates per second, parameter count and peak memory, per size, with and without torch.compile.

Each configuration runs in a fresh process, so peak memory is its own. An update is one optimiser
step of the full world-model loss on a batch of B x T steps of 64 x 64 RGB images with 5 discrete
actions (the Pin Pad observation). The first updates (and compilation) are warm-up, not timed;
compile time is reported on its own.

    python -m benchmarks.world_model_speed                  # debug, 12M, 25M; eager and compiled
    python -m benchmarks.world_model_speed --quick          # debug only, about a minute
    python -m benchmarks.world_model_speed --sizes 12M --no-compile --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import print_table, spread, write_results


def _batch(batch: int, length: int, device: str) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    out = {
        "image": torch.randint(0, 256, (batch, length, 64, 64, 3), generator=g, dtype=torch.uint8),
        "action": torch.nn.functional.one_hot(torch.randint(0, 5, (batch, length), generator=g), 5).float(),
        "reward": torch.randn(batch, length, generator=g),
        "is_first": torch.zeros(batch, length, dtype=torch.bool),
        "is_terminal": torch.zeros(batch, length, dtype=torch.bool),
    }
    out["is_first"][:, 0] = True
    return {k: v.to(device) for k, v in out.items()}


def measure(size: str, compiled: bool, batch: int, length: int, repeats: int, updates: int, device: str
            ) -> dict[str, Any]:
    """Time one configuration in this process."""
    import torch

    from world_models.config import sized
    from world_models.world_model import WorldModel

    torch.manual_seed(0)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = WorldModel({"image": (64, 64, 3)}, 5, sized(size)).to(device)
    data = _batch(batch, length, device)
    if compiled:
        model.compile_parts()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    for _ in range(2):  # warm-up: allocations, autotuning, compilation
        model.update(data)
    sync()
    warmup = time.perf_counter() - start
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(updates):
            model.update(data)
        sync()
        rates.append(updates / (time.perf_counter() - start))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline_rss)
    return {"size": size, "compiled": compiled, "device": device, "batch": batch, "length": length,
            "parameters": sum(p.numel() for p in model.parameters()), "updates_per_s": spread(rates),
            "warmup_s": warmup, "peak_memory_mib": peak,
            "memory_kind": "cuda max allocated" if device.startswith("cuda") else "process peak RSS growth"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="debug size only, few repeats (about a minute)")
    parser.add_argument("--sizes", nargs="+", help="sizes to measure (default: debug 12M 25M)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch (default 16)")
    parser.add_argument("--length", type=int, default=64, help="steps per sequence (default 64)")
    parser.add_argument("--repeats", type=int, help="timed repeats per configuration (default 5; 3 with --quick)")
    parser.add_argument("--updates", type=int, default=2, help="updates per timed repeat (default 2)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--no-compile", action="store_true", help="measure eager mode only")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args()

    if args.one:
        size, compiled, device = json.loads(args.one)
        print(json.dumps(measure(size, compiled, args.batch, args.length, args.repeats, args.updates, device)))
        return

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    sizes = args.sizes or (["debug"] if args.quick else ["debug", "12M", "25M"])
    repeats = args.repeats or (3 if args.quick else 5)
    rows = []
    for size in sizes:
        for compiled in ([False] if args.no_compile else [False, True]):
            command = [sys.executable, "-m", "benchmarks.world_model_speed", "--one",
                       json.dumps([size, compiled, device]), "--batch", str(args.batch), "--length",
                       str(args.length), "--repeats", str(repeats), "--updates", str(args.updates)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                print(f"{size} compiled={compiled} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"measured {size} compiled={compiled}", file=sys.stderr)
    table = [{"size": r["size"], "compile": "yes" if r["compiled"] else "no", "device": r["device"],
              "params": f"{r['parameters'] / 1e6:.2f}M", "updates/s": f"{r['updates_per_s']['median']:.3g}",
              "range": f"{r['updates_per_s']['min']:.3g}-{r['updates_per_s']['max']:.3g}",
              "warm-up s": f"{r['warmup_s']:.1f}", "peak MiB": f"{r['peak_memory_mib']:.0f}"} for r in rows]
    print_table(table, ["size", "compile", "device", "params", "updates/s", "range", "warm-up s", "peak MiB"])
    path = write_results("world_model_speed", rows, {"batch": args.batch, "length": args.length,
                                                     "repeats": repeats, "updates_per_repeat": args.updates})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
