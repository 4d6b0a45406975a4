"""(e) A run restored from ``state_dict`` (through torch.save / torch.load(weights_only=True))
continues bit-identically."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from psl_env.system.scenario import load_scenario
from psl_env.training.engine import SplitTrainingEngine

CFG = {"model": "small-cnn", "num_clients": 3, "num_subchannels": 6, "batch_size": 16, "seed": 7,
       "training": {"dataset": "digits", "eval_every": 4, "partition": "dirichlet", "dirichlet_alpha": 0.5}}


def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def params(engine: SplitTrainingEngine) -> list[torch.Tensor]:
    out = [p for i in range(engine.num_clients) for b in engine.client_blocks(i) for p in b.parameters()]
    out += [p for _, b in sorted(engine.server_blocks().items()) for p in b.parameters()]
    return out + [b for _, m in sorted(engine.server_blocks().items()) for b in m.buffers()]


def run(engine, cuts):
    return [(r.loss, r.accuracy, r.evaluated, r.synced, r.cut.tolist(), r.migration_bits.tolist())
            for r in (engine.step(c) for c in cuts)]


@pytest.mark.parametrize("over,before,after", [
    ({"scheme": "psl", "phi": 0.0}, [2] * 5 + [3] * 4, [3] * 3 + [1] * 6),
    ({"scheme": "epsl", "phi": 0.5, "training.optimizer": "adam", "training.lr": 0.002}, [2] * 6, [2, 3, 3, 1, 1, 2]),
    ({"scheme": "sfl", "phi": 0.0, "sync_period": 3}, [2] * 7, [4] * 5),
    ({"scheme": "psl", "phi": 0.0, "training.augment_shift": 1, "training.weight_decay": 5e-4}, [2] * 4, [2] * 4),
    ({"scheme": "edgesplit", "phi": 0.0, "training.local_iterations": 2}, [[1, 2, 3]] * 3 + [[3, 1, 2]] * 2,
     [[3, 1, 2], [2, 2, 4], [1, 1, 1], [4, 3, 2]]),
])
def test_restore_continues_bit_identically(over, before, after):
    scenario = load_scenario(CFG, over)
    a = SplitTrainingEngine(scenario)
    run(a, before)
    state = roundtrip(a.state_dict())
    b = SplitTrainingEngine(scenario, initial_cut=1)  # a different starting layout on purpose
    b.load_state_dict(state)
    assert b.round == a.round and np.array_equal(b.cut, a.cut)
    assert run(a, after) == run(b, after)
    assert all(torch.equal(x, y) for x, y in zip(params(a), params(b)))
    assert a.evaluate().accuracy == b.evaluate().accuracy


def test_rewind_to_a_checkpoint_repeats_the_same_rounds():
    eng = SplitTrainingEngine(load_scenario(CFG, {"scheme": "psl", "phi": 0.0}))
    run(eng, [2] * 3)
    state = roundtrip(eng.state_dict())
    first = run(eng, [2, 2, 3, 3])
    eng.load_state_dict(state)
    assert run(eng, [2, 2, 3, 3]) == first


def test_state_of_another_setup_is_rejected():
    a = SplitTrainingEngine(load_scenario(CFG, {"scheme": "psl", "phi": 0.0}))
    b = SplitTrainingEngine(load_scenario(CFG, {"scheme": "psl", "phi": 0.0, "num_clients": 4}))
    with pytest.raises(ValueError, match="num_clients"):
        b.load_state_dict(a.state_dict())


def test_batchnorm_model_moves_and_restores():
    """ResNet-18 (BatchNorm buffers travel and average with the blocks) on a tiny synthetic set."""
    from psl_env.training.datasets import Dataset

    g = torch.Generator().manual_seed(0)
    data = Dataset("synthetic", torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g),
                   torch.rand(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g))
    s = load_scenario({"model": "resnet18-32", "scheme": "edgesplit", "phi": 0.0, "num_clients": 2,
                       "num_subchannels": 2, "batch_size": 2, "training": {"eval_every": 2}})
    a = SplitTrainingEngine(s, initial_cut=[1, 8], data=data)
    first = a.step().loss
    a.step([8, 1])  # blocks 2..8 go to the server from client 1 and come back to client 0
    assert np.isfinite(first) and np.isfinite(a.evaluate().loss)
    b = SplitTrainingEngine(s, data=data)
    b.load_state_dict(roundtrip(a.state_dict()))
    assert run(a, [[8, 1]]) == run(b, [[8, 1]])
    assert all(torch.equal(x, y) for x, y in zip(params(a), params(b)))
