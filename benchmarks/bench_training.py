"""Speed and quality of the real split-training engine on the offline digits data.

Prints:
1. milliseconds per real round (small CNN on digits, N=5 clients, b=32, cut 2; the digits-train
   recipe: SGD with momentum and weight decay, 1-pixel shift augmentation) per scheme, and for 1 and
   2 torch threads;
2. the overhead of split training over plain training of the same model on the same samples
   (N*b rows per step, same optimizer, same augmentation), target <= 1.5x.

Rounds and simulated seconds to 95% accuracy: ``benchmarks/bench_time_to_accuracy.py``.

Usage: python benchmarks/bench_training.py [--timing-rounds 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.nn import functional as F

from psl_env.models import build_model
from psl_env.system.scenario import load_scenario
from psl_env.training.engine import ClientSampler, SplitTrainingEngine, random_shift
from timing import best_seconds

BASE = "digits-train"  # small-cnn, N=5, b=32, SGD lr 0.05, momentum 0.9, weight decay 5e-4, shift 1
CUT = 2


def best_ms(step, rounds: int, blocks: int = 5) -> float:
    """Milliseconds per call of ``step``: the best of ``blocks`` timed blocks (other processes add noise)."""
    return best_seconds(step, repeats=blocks, number=max(1, rounds // blocks), warmup=30) * 1e3


def ms_per_round(overrides: dict, rounds: int, cut=CUT) -> float:
    eng = SplitTrainingEngine(load_scenario(BASE, {"training.eval_every": 10**6, **overrides}))
    return best_ms(lambda: eng.step(cut), rounds)


def ms_plain(rounds: int, threads: int = 1) -> float:
    """Plain training of the same model on the same kind of batch: N*b rows, one optimizer."""
    s = load_scenario(BASE, {"training.torch_threads": threads})
    eng = SplitTrainingEngine(s)  # for its data and partitions (and the thread setting)
    torch.manual_seed(0)
    model = build_model("small-cnn", eng.data.input_shape, eng.data.num_classes)
    tc = s.training
    opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    sampler = ClientSampler([torch.from_numpy(p.astype(np.int64)) for p in eng.partitions], s.batch_size, 0)
    x_all, y_all = eng.data.x_train, eng.data.y_train

    def step() -> float:
        idx = sampler.draw()
        x = x_all.index_select(0, idx)
        if tc.augment_shift:
            x = random_shift(x, tc.augment_shift)
        loss = F.cross_entropy(model(x), y_all.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return best_ms(step, rounds)


def ms_env_step(rounds: int) -> float:
    """One ``PSLTrain-v0`` step with a fixed box action (evaluation off)."""
    from psl_env.envs.train_env import PSLTrainEnv

    env = PSLTrainEnv(action_type="box", overrides={"training.eval_every": 10**6, "rounds": 10**6})
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    return best_ms(lambda: env.step(action), rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timing-rounds", type=int, default=300)
    args = ap.parse_args()
    r = args.timing_rounds

    print(f"# split-training engine: small-cnn on digits, N=5, b=32, cut {CUT}, {BASE} recipe")
    print(f"\n## ms per real round (no evaluation; best of 5 blocks of {r // 5} rounds)")
    print("| scheme | 1 thread | 2 threads |")
    print("|---|---|---|")
    cases = [("psl", {"scheme": "psl", "phi": 0.0}, CUT), ("epsl phi=0.5", {"scheme": "epsl", "phi": 0.5}, CUT),
             ("sfl (FedAvg every round)", {"scheme": "sfl", "phi": 0.0}, CUT),
             ("edgesplit cuts 1,2,3,4,2", {"scheme": "edgesplit", "phi": 0.0}, np.array([1, 2, 3, 4, 2]))]
    for name, over, cut in cases:
        one = ms_per_round({**over, "training.torch_threads": 1}, r, cut)
        two = ms_per_round({**over, "training.torch_threads": 2}, r, cut)
        print(f"| {name} | {one:.2f} | {two:.2f} |")
    eval_ms = ms_per_round({"scheme": "psl", "phi": 0.0, "training.eval_every": 10}, r) - \
        ms_per_round({"scheme": "psl", "phi": 0.0}, r)
    print(f"\nevaluation every 10 rounds adds {eval_ms:.2f} ms per round on average (5 client models, 359 test samples)")

    env_ms = ms_env_step(r)
    print(f"\nPSLTrain-v0 step (box action: decode, price, one real psl round at the decoded cut; no evaluation): "
          f"{env_ms:.2f} ms")

    print("\n## overhead of split over plain training (same model, N*b = 160 samples per step, 1 thread)")
    split = ms_per_round({"scheme": "psl", "phi": 0.0, "training.torch_threads": 1}, r)
    plain = ms_plain(r, 1)
    print(f"plain {plain:.2f} ms/step, split (psl) {split:.2f} ms/round: ratio {split / plain:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
