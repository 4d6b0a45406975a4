"""The split-training engine: equivalences, gradient plumbing, cut moves, EPSL aggregation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.psl_env.training.helpers import scenario_from
from psl_env.training.datasets import Dataset, load_dataset
from psl_env.training.engine import SplitTrainingEngine, random_shift, resolve_model

BASE = {"model": "small-cnn", "num_clients": 4, "num_subchannels": 8, "batch_size": 8, "scheme": "psl",
        "phi": 0.0, "seed": 1, "training": {"dataset": "digits", "eval_every": 1000000, "lr": 0.05,
                                           "momentum": 0.9}}


def scenario(**over):
    return scenario_from(BASE, over)


def even_data(n_train: int = 400) -> Dataset:
    """Digits with a train set divisible by the client count, so IID partitions are equal-sized."""
    d = load_dataset("digits")
    return Dataset("digits", d.x_train[:n_train].clone(), d.y_train[:n_train].clone(), d.x_test, d.y_test)


def all_params(engine: SplitTrainingEngine) -> list[torch.Tensor]:
    out = [p for i in range(engine.num_clients) for blk in engine.client_blocks(i) for p in blk.parameters()]
    return out + [p for _, blk in sorted(engine.server_blocks().items()) for p in blk.parameters()]


def max_diff(a, b) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(a, b))


# -- (a) SFL with FedAvg every round == centralized SGD on the union batch ------------------------

@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sfl_every_round_equals_centralized_sgd(momentum):
    data = even_data()
    eng = SplitTrainingEngine(scenario(scheme="sfl", training={"lr": 0.1, "momentum": momentum}),
                              initial_cut=2, data=data)
    assert np.all(eng.client_sizes == eng.client_sizes[0])
    central = copy.deepcopy(eng.composed_model(0))
    opt = torch.optim.SGD(central.parameters(), lr=0.1, momentum=momentum)
    # The cut also moves: FedAvg'd copies are identical, so migration must not change the function.
    for t, cut in enumerate([2] * 6 + [3] * 6 + [1] * 6):
        res = eng.step(cut)
        idx = eng.last_indices
        loss = F.cross_entropy(central(data.x_train[idx]), data.y_train[idx])  # mean over the union
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert res.synced
        assert abs(res.loss - float(loss.detach())) < 1e-5, t
        ref = list(central.parameters())
        for i in range(eng.num_clients):
            assert max_diff(list(eng.composed_model(i).parameters()), ref) < 1e-5, (t, i)


# -- gradient plumbing against a direct autograd reference ---------------------------------------

@pytest.mark.parametrize("scheme,cut", [("psl", 2), ("edgesplit", [1, 2, 4, 2])])
def test_one_step_matches_reference_gradients(scheme, cut):
    """Server params follow the mean of the clients' losses; client i's follow its own loss."""
    # no FedAvg after the step (EdgeSplit syncs every round by default): the gradients alone
    eng = SplitTrainingEngine(scenario(scheme=scheme, sync_period=0, training={"momentum": 0.0, "lr": 0.1}),
                              initial_cut=cut)
    eng.step(cut)  # make client copies differ
    clients = [copy.deepcopy(eng.client_blocks(i)) for i in range(eng.num_clients)]
    server = copy.deepcopy(eng.server_blocks())
    res = eng.step(cut)
    idx = eng.last_indices.view(eng.num_clients, -1)
    cuts = np.broadcast_to(np.asarray(cut), (eng.num_clients,))
    losses = []
    for i in range(eng.num_clients):
        h = eng.data.x_train[idx[i]]
        for blk in clients[i]:
            h = blk(h)
        for k in range(int(cuts[i]), eng.num_blocks):
            h = server[k](h)
        losses.append(F.cross_entropy(h, eng.data.y_train[idx[i]]))
    total = torch.stack(losses).mean()
    assert abs(float(total.detach()) - res.loss) < 1e-6
    total.backward()
    with torch.no_grad():
        for i in range(eng.num_clients):
            for blk_ref, blk in zip(clients[i], eng.client_blocks(i)):
                for p_ref, p in zip(blk_ref.parameters(), blk.parameters()):
                    # client grads of the mean are 1/N of the client's own loss gradient
                    assert torch.allclose(p_ref - 0.1 * eng.num_clients * p_ref.grad, p, atol=1e-6)
        for k, blk in eng.server_blocks().items():
            for p_ref, p in zip(server[k].parameters(), blk.parameters()):
                assert torch.allclose(p_ref - 0.1 * p_ref.grad, p, atol=1e-6)


# -- (b) EPSL with phi = 0 is plain PSL ----------------------------------------------------------

def test_epsl_phi_zero_is_exactly_psl():
    cuts = [2] * 5 + [3] * 5 + [1] * 5
    a = SplitTrainingEngine(scenario(scheme="psl", phi=0.0))
    b = SplitTrainingEngine(scenario(scheme="epsl", phi=0.0))
    for cut in cuts:
        ra, rb = a.step(cut), b.step(cut)
        assert ra.loss == rb.loss
        assert rb.aggregated_rows == 0 and rb.server_backward_rows == ra.server_backward_rows
    assert all(torch.equal(x, y) for x, y in zip(all_params(a), all_params(b)))


def test_epsl_with_identical_client_batches_equals_psl():
    """If every client holds the same weights and data, averaging rows loses nothing."""
    engines = [SplitTrainingEngine(scenario(scheme=s, phi=p, training={"momentum": 0.0}), initial_cut=2)
               for s, p in (("psl", 0.0), ("epsl", 0.5))]
    for eng in engines:
        first = eng.partitions[0][:8]
        eng._sampler.draw = lambda first=first, n=eng.num_clients: torch.from_numpy(np.tile(first, n))
    for _ in range(5):
        ra, rb = (eng.step(2) for eng in engines)
        assert abs(ra.loss - rb.loss) < 1e-6
    assert max_diff(all_params(engines[0]), all_params(engines[1])) < 1e-5


def test_epsl_aggregation_counts_and_effect():
    psl = SplitTrainingEngine(scenario(scheme="psl", phi=0.0))
    eps = SplitTrainingEngine(scenario(scheme="epsl", phi=0.5))
    ra, rb = psl.step(2), eps.step(2)
    n, b = 4, 8
    assert rb.aggregated_rows == 4 and rb.server_backward_rows == 4 + n * (b - 4)
    assert rb.downlink_broadcast_bits == 4 * rb.grad_bits_per_sample[0]
    assert np.all(rb.downlink_unicast_bits == (b - 4) * rb.grad_bits_per_sample)
    assert ra.loss == rb.loss  # same data and weights before the first update
    assert max_diff(all_params(psl), all_params(eps)) > 1e-6  # but a different update
    for _ in range(30):
        r = eps.step(2)
    assert np.isfinite(r.loss) and r.loss < ra.loss


def test_epsl_full_aggregation_rows():
    eng = SplitTrainingEngine(scenario(scheme="epsl", phi=1.0), initial_cut=2)
    r = eng.step(2)
    assert r.aggregated_rows == 8 and r.server_backward_rows == 8
    assert np.all(r.downlink_unicast_bits == 0) and r.downlink_broadcast_bits == 8 * r.grad_bits_per_sample[0]
    for _ in range(20):
        r = eng.step(2)
    assert np.isfinite(r.loss)


# -- per-device cuts ------------------------------------------------------------------------------

def test_edgesplit_grouped_server_pass_matches_composed_models():
    eng = SplitTrainingEngine(scenario(scheme="edgesplit"), initial_cut=[1, 3, 2, 4])
    for _ in range(3):
        eng.step()
    models = [copy.deepcopy(eng.composed_model(i)) for i in range(4)]
    res = eng.step()
    idx = eng.last_indices.view(4, -1)
    with torch.no_grad():
        ref = np.mean([float(F.cross_entropy(m(eng.data.x_train[idx[i]]), eng.data.y_train[idx[i]]))
                       for i, m in enumerate(models)])
    assert abs(res.loss - ref) < 1e-6
    assert set(eng.server_blocks()) == {1, 2, 3, 4}
    assert [len(eng.client_blocks(i)) for i in range(4)] == [1, 3, 2, 4]


def test_common_cut_schemes_reject_per_device_cuts():
    eng = SplitTrainingEngine(scenario(scheme="psl"))
    with pytest.raises(ValueError, match="edgesplit"):
        eng.step([1, 2, 2, 2])
    with pytest.raises(ValueError, match="outside"):
        eng.step(5)
    with pytest.raises(ValueError, match="cuts"):
        eng.step([1, 2])


# -- (c) cut moves ---------------------------------------------------------------------------------

def test_moving_blocks_to_clients_preserves_every_client_model():
    eng = SplitTrainingEngine(scenario(scheme="psl"), initial_cut=1)
    for _ in range(20):
        eng.step(1)
    before = eng.evaluate()
    bits = eng.set_cut(4)
    after = eng.evaluate()
    assert np.array_equal(before.client_accuracy, after.client_accuracy)
    assert before.loss == pytest.approx(after.loss, abs=1e-6)
    assert eng.profile is None or np.all(bits == eng.profile.param_bits[4] - eng.profile.param_bits[1])


def test_sfl_cut_moves_preserve_the_synced_model():
    eng = SplitTrainingEngine(scenario(scheme="sfl"), initial_cut=3)
    for _ in range(10):
        eng.step(3)
    base = eng.evaluate()
    for cut in (1, 4, 2):
        eng.set_cut(cut)
        ev = eng.evaluate()
        assert ev.loss == pytest.approx(base.loss, abs=1e-5)
        assert ev.accuracy == pytest.approx(base.accuracy, abs=1e-9)


def test_loss_continues_smoothly_when_the_cut_moves():
    eng = SplitTrainingEngine(scenario(scheme="psl", num_clients=5, batch_size=32,
                                       training={"lr": 0.05, "momentum": 0.9}), initial_cut=2)
    for _ in range(150):
        eng.step(2)
    twin = SplitTrainingEngine(eng.scenario)
    twin.load_state_dict(eng.state_dict())
    stay = [twin.step(2).loss for _ in range(15)]
    ev_before = eng.evaluate()
    moved = [eng.step(1).loss for _ in range(5)] + [eng.step(4).loss for _ in range(10)]
    # blocks 2 went to the server (averaged over clients), later blocks 2..4 came back as copies
    assert np.mean(moved[:5]) < 1.5 * np.mean(stay[:5]) + 0.05, (moved, stay)
    assert np.mean(moved) < 1.5 * np.mean(stay) + 0.05, (moved, stay)
    assert max(moved) < 1.0  # far below the ~2.3 of an untrained model
    assert eng.evaluate().accuracy > ev_before.accuracy - 0.05


def test_move_to_server_averages_weights_and_momentum():
    eng = SplitTrainingEngine(scenario(scheme="psl"), initial_cut=3)
    for _ in range(5):
        eng.step(3)
    copies = [eng.client_blocks(i)[2] for i in range(4)]
    w = eng.client_sizes / eng.client_sizes.sum()
    expect = sum(wi * next(c.parameters()).detach() for wi, c in zip(w, copies))
    moms = [eng._opt.state[next(c.parameters())]["momentum_buffer"] for c in copies]
    expect_mom = sum(wi * m for wi, m in zip(w, moms))
    bits = eng.set_cut(2)
    block = eng.server_blocks()[2]
    assert torch.allclose(next(block.parameters()), expect, atol=1e-7)
    assert torch.allclose(eng._opt.state[next(block.parameters())]["momentum_buffer"], expect_mom, atol=1e-7)
    assert eng.profile is None or np.all(bits == eng.profile.param_bits[3] - eng.profile.param_bits[2])
    eng.step(2)  # trains on with the merged block


# -- (f) measured bits against the shipped profile ----------------------------------------------

def test_measured_bits_match_the_small_cnn_profile():
    eng = SplitTrainingEngine(scenario(scheme="edgesplit"), initial_cut=[1, 2, 3, 4])
    res = eng.step()
    if eng.profile is None:
        pytest.skip("no small-cnn profile shipped")
    prof = eng.profile
    assert np.array_equal(res.act_bits_per_sample, prof.act_bits[[1, 2, 3, 4]])
    assert np.array_equal(res.grad_bits_per_sample, prof.grad_bits[[1, 2, 3, 4]])
    assert np.array_equal(res.uplink_bits, 8 * prof.act_bits[[1, 2, 3, 4]])
    sfl = SplitTrainingEngine(scenario(scheme="sfl"), initial_cut=3)
    r = sfl.step(3)
    assert r.synced and np.all(r.sync_bits == prof.param_bits[3])


def test_measured_bits_by_hand_for_small_cnn():
    eng = SplitTrainingEngine(scenario(scheme="edgesplit", bits_per_element=16), initial_cut=[1, 2, 3, 4])
    res = eng.step()
    elements = np.array([16 * 8 * 8, 16 * 4 * 4, 32 * 4 * 4, 32 * 2 * 2])
    assert np.array_equal(res.act_bits_per_sample, 16 * elements)


# -- misc ------------------------------------------------------------------------------------------

def test_evaluation_schedule_and_training_progress():
    eng = SplitTrainingEngine(scenario(num_clients=5, batch_size=32, training={"eval_every": 25}))
    results = [eng.step(2) for _ in range(200)]
    assert [r.round for r in results if r.evaluated] == [25, 50, 75, 100, 125, 150, 175, 200]
    assert np.isnan(results[0].accuracy) and results[30].accuracy == results[48].accuracy == results[24].accuracy
    assert results[-1].accuracy > 0.8 and results[-1].loss < 0.5
    assert eng.eval_model == "clients"
    avg = SplitTrainingEngine(eng.scenario, eval_model="averaged")
    avg.load_state_dict(eng.state_dict())
    assert avg.evaluate().accuracy == results[-1].accuracy  # restored, still fresh
    avg.step(2)
    ev = avg.evaluate()
    assert 0.0 <= ev.accuracy <= 1.0 and np.all(ev.client_accuracy == ev.accuracy)


def test_adam_and_weight_decay_run():
    eng = SplitTrainingEngine(scenario(scheme="sfl", training={"optimizer": "adam", "lr": 1e-3,
                                                             "weight_decay": 1e-4}))
    first = eng.step(2).loss
    for cut in [2] * 20 + [1] * 10 + [3] * 10:
        r = eng.step(cut)
    assert r.loss < first


def test_resolve_model_names():
    assert resolve_model("small-cnn") == ("small-cnn", None)
    assert resolve_model("resnet18-64") == ("resnet18", 64)
    assert resolve_model("vgg16-32") == ("vgg16", 32)
    with pytest.raises(ValueError, match="allowed"):
        resolve_model("alexnet-32")
    with pytest.raises(ValueError, match="32x32"):
        SplitTrainingEngine(scenario(model="resnet18-32"))


def test_random_shift_translates_each_image_within_k_pixels():
    torch.manual_seed(0)
    x = torch.rand(64, 2, 6, 5) + 1.0  # no zeros inside the images
    y = random_shift(x, 2)
    assert y.shape == x.shape
    shifts = set()
    for i in range(len(x)):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(y[i], torch.roll(torch.nn.functional.pad(x[i], (2, 2, 2, 2)), (dy, dx), (1, 2))[
                     :, 2:8, 2:7])]
        assert len(found) == 1, i
        shifts.add(found[0])
    assert len(shifts) > 10  # offsets vary per image


def test_augmentation_changes_the_batches_not_the_evaluation():
    plain = SplitTrainingEngine(scenario())
    aug = SplitTrainingEngine(scenario(training={"augment_shift": 1}))
    assert plain.evaluate().accuracy == aug.evaluate().accuracy  # same initial model, untouched test set
    assert plain.step(2).loss != aug.step(2).loss
    assert torch.equal(plain.last_indices, aug.last_indices)  # same samples, shifted


def test_eval_model_comes_from_the_scenario_unless_given():
    s = scenario(training={"eval_model": "averaged"})
    assert SplitTrainingEngine(s).eval_model == "averaged"
    assert SplitTrainingEngine(s, eval_model="clients").eval_model == "clients"
    with pytest.raises(ValueError, match="eval_model"):
        SplitTrainingEngine(s, eval_model="best")
