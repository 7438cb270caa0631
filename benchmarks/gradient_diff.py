"""Do two commits compute the same world-model loss and gradients? One fixed batch, each commit in its own process.

Each side builds the world model of the CartPole preset's size with the same seed, computes the loss of
one fixed random batch and its gradients, and saves them; the driver prints the loss of each side and
every parameter whose gradient differs, with the largest difference. A change meant to change no
behaviour shows equal losses and no (or only rounding-level) gradient differences.

    python -m benchmarks.gradient_diff a38e6d3^ a38e6d3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.learner_timing import worktree

SIDE = """
import sys, torch
from world_models.world_model import WorldModel
from world_models.config import sized
torch.manual_seed(0)
model = WorldModel({"vector": (4,)}, 2, sized("debug", units=128, hidden=128, deter=256, stoch=16, classes=16,
                                               layers=2, lr=3e-4))
g = torch.Generator().manual_seed(1)
b, t = 16, 32
batch = {"vector": torch.randn(b, t, 4, generator=g),
         "action": torch.nn.functional.one_hot(torch.randint(0, 2, (b, t), generator=g), 2).float(),
         "reward": torch.ones(b, t), "is_first": torch.rand(b, t, generator=g) < 0.1,
         "is_terminal": torch.rand(b, t, generator=g) < 0.05}
torch.manual_seed(5)
loss, _ = model.loss(batch)
loss.backward()
torch.save({"loss": loss.item(), "grads": {n: p.grad for n, p in model.named_parameters() if p.grad is not None}},
           sys.argv[1])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="a commit (e.g. a38e6d3^)")
    parser.add_argument("after", help="another commit (e.g. a38e6d3)")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as work:
        results = []
        for rev in (args.before, args.after):
            tree, out = worktree(rev), Path(work) / f"{len(results)}.pt"
            subprocess.run([sys.executable, "-c", SIDE, str(out)], cwd=tree,
                           env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
            results.append(torch.load(out))
    (a, b) = results
    print(f"loss: {args.before} {a['loss']!r}, {args.after} {b['loss']!r}, equal: {a['loss'] == b['loss']}")
    differ = [(name, (g - b["grads"][name]).abs().max().item(), g.abs().max().item())
              for name, g in a["grads"].items() if not torch.equal(g, b["grads"][name])]
    print(f"{len(differ)} of {len(a['grads'])} parameters' gradients differ"
          + "".join(f"\n  {n}: max difference {d:.2g} (largest gradient entry {m:.2g})" for n, d, m in differ))


if __name__ == "__main__":
    main()
