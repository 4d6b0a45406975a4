"""The distributed engine (torch.distributed, gloo, 1 server + 2 clients on 127.0.0.1) against the
in-process engine, the latency model's bits and the emulated links; a killed client; the launchers.

Every cluster binds to 127.0.0.1, every transfer has a bounded timeout, and every process a test
starts is stopped by the test (``Cluster.close``) or at the latest when the test process exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist

from tests.psl_env.training.helpers import scenario_from
from psl_env.envs.train_env import PSLTrainEnv
from psl_env.models import load_profile
from psl_env.system.latency import cut_terms
from psl_env.system.scheme import SchemeTables
from psl_env.training.distributed import (Cluster, DistributedError, DistributedSplitEngine, LinkRates,
                                          close_shared_cluster, shared_cluster)
from psl_env.training.datasets import load_dataset
from psl_env.training.engine import SplitTrainingEngine

TIMEOUT_S = 20.0  # bound on every transfer of these tests
BASE = {"model": "small-cnn", "num_clients": 2, "num_subchannels": 4, "batch_size": 8, "scheme": "psl", "phi": 0.0,
        "seed": 5, "training": {"eval_every": 10, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                                "augment_shift": 1}}
# 50 rounds with cut moves both ways (migration uploads and downloads)
COMMON_CUTS = [2] * 12 + [3] * 12 + [1] * 13 + [2] * 13
DEVICE_CUTS = [[2, 2]] * 12 + [[1, 3]] * 12 + [[3, 1]] * 13 + [[2, 4]] * 13
SCHEMES = {"psl": {}, "epsl": {"scheme": "epsl", "phi": 0.5}, "sfl": {"scheme": "sfl"},
           "edgesplit": {"scheme": "edgesplit"},
           # the unicast downlink sends each client all b rows; a step of 3 iterations is one command
           "epsl-unicast-3-iterations": {"scheme": "epsl", "phi": 0.25, "downlink": "unicast",
                                         "training": {"local_iterations": 3, "eval_model": "averaged"}}}


def scenario(over: dict):
    return scenario_from(BASE, over)


@pytest.fixture(scope="module", autouse=True)
def _stop_clusters():
    yield
    close_shared_cluster()


def cluster() -> Cluster:
    """The module's 2-client cluster (spawned once per test process, reused)."""
    return shared_cluster(2, TIMEOUT_S)


def max_weight_gap(a: SplitTrainingEngine, b: SplitTrainingEngine) -> float:
    gap = 0.0
    for i in range(a.num_clients):
        for p, q in zip(a.composed_model(i).state_dict().values(), b.composed_model(i).state_dict().values()):
            gap = max(gap, float((p.double() - q.double()).abs().max()))
    return gap


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_distributed_equals_inprocess_after_50_rounds(scheme):
    s = scenario(SCHEMES[scheme])
    cuts = DEVICE_CUTS if scheme == "edgesplit" else COMMON_CUTS
    local = SplitTrainingEngine(s, initial_cut=cuts[0])
    remote = DistributedSplitEngine(s, initial_cut=cuts[0], cluster=cluster())
    for cut in cuts:
        a, b = local.step(cut), remote.step(cut)
        assert abs(a.loss - b.loss) < 1e-6
        assert a.accuracy == b.accuracy or (np.isnan(a.accuracy) and np.isnan(b.accuracy))
        assert a.synced == b.synced and np.array_equal(a.migration_bits, b.migration_bits)
        assert np.array_equal(a.uplink_bits, b.uplink_bits)
        assert np.array_equal(a.downlink_unicast_bits, b.downlink_unicast_bits)
        assert a.downlink_broadcast_bits == b.downlink_broadcast_bits
        assert np.array_equal(a.server_backward_rows_by_cut, b.server_backward_rows_by_cut)
    assert remote.round == 50 and np.array_equal(local.cut, remote.cut)
    assert max_weight_gap(local, remote) < 1e-6  # every block, client- and server-side, BatchNorm included
    assert torch.equal(local.last_indices, remote.last_indices)


def test_distributed_state_dict_continues_in_process():
    """The pulled state (client blocks, momentum, sampler, generator) resumes in one process."""
    s = scenario({"scheme": "sfl", "sync_period": 3})
    remote = DistributedSplitEngine(s, initial_cut=2, cluster=cluster())
    local = SplitTrainingEngine(s, initial_cut=2)
    for cut in (2, 2, 3, 3, 1):
        remote.step(cut)
        local.step(cut)
    resumed = SplitTrainingEngine(s, initial_cut=1)
    resumed.load_state_dict(remote.state_dict())
    for _ in range(4):
        assert abs(resumed.step(2).loss - local.step(2).loss) < 1e-6
    assert max_weight_gap(local, resumed) < 1e-6


def test_distributed_an_older_engine_cannot_run_on_clients_a_newer_one_took():
    s = scenario({})
    old = DistributedSplitEngine(s, initial_cut=2, cluster=cluster())
    old.step()
    new = DistributedSplitEngine(s, initial_cut=3, cluster=cluster())
    with pytest.raises(DistributedError, match="a newer engine re-initialized"):
        old.step()
    assert new.step().round == 1 and not new.cluster.broken


def expected_phases(res, tables, links: LinkRates, prev_cut) -> dict:
    """The latency model's transfer phases of a round at the links' rates (no compute)."""
    n = len(res.cut)
    terms = cut_terms(tables, res.cut, np.full(n, np.inf), broadcast_rate=links.broadcast_bps or 1.0,
                      prev_cut=prev_cut, sync=res.synced)
    lat = terms.latency(links.up_bps, links.down_bps)
    return {"uplink": float(np.max(lat.uplink_s)), "downlink": float(np.max(lat.downlink_s)),
            "sync": float(lat.sync), "migration": float(lat.migration)}


@pytest.mark.parametrize("bits,optimizer", [(32, "sgd"), (16, "adam"), (8, "sgd")])
def test_distributed_bytes_equal_the_latency_model_bits(bits, optimizer):
    """Every rank's bytes on the model's lines equal the model's bits (activations and gradients at
    bits_per_element, cast for real; the broadcast once; sync up + down; migration), the other lines
    are what they should be, each client counted the same bytes, and the weights equal the in-process
    engine sending through the same wire format."""
    s = scenario({"scheme": "epsl", "phi": 0.5, "sync_period": 2, "bits_per_element": bits,
                  "training": {"optimizer": optimizer, "lr": 0.01 if optimizer == "adam" else 0.05,
                               "eval_every": 3}})
    n, b, m = s.num_clients, s.batch_size, 4
    tables = SchemeTables.build(s, load_profile(s.model))
    remote = DistributedSplitEngine(s, initial_cut=2, cluster=cluster())
    local = SplitTrainingEngine(s, initial_cut=2, wire_cast=True)
    start = remote.client_totals()
    server_sent, server_received = dict(remote._comm.sent), dict(remote._comm.received)
    prev = None
    per_byte = bits / 8
    totals = np.zeros(n + 1)
    for cut in (2, 3, 3, 1, 2):
        res = remote.step(cut)
        ref = local.step(cut)
        assert abs(res.loss - ref.loss) < 1e-6
        cuts = np.full(n, cut)
        terms = cut_terms(tables, cuts, np.ones(n), broadcast_rate=1.0, prev_cut=prev, sync=res.synced)
        sent, to_client = res.traffic.sent, res.traffic.to_client
        # the model's lines: bits = bytes x 8, per rank
        assert np.array_equal(sent["activations"][1:] * 8, terms.up_bits) and sent["activations"][0] == 0
        assert np.array_equal(to_client["gradients"] * 8, terms.dn_bits)
        assert sent["broadcast"][0] * 8 == tables.dn_broadcast_bits[cut] == m * res.grad_bits_per_sample[0]
        assert sent["gradients"][0] == to_client["gradients"].sum()  # the broadcast is not in it
        if res.synced:
            assert np.array_equal(sent["sync"][1:] * 8, terms.sync_bits)
            assert np.array_equal(to_client["sync"] * 8, terms.sync_bits)  # uploads plus downloads
        else:
            assert not sent["sync"].any()
        if terms.mig_bits is not None:
            up = terms.mig_up
            assert np.array_equal(sent["migration"][1:] * 8, np.where(up, terms.mig_bits, 0))
            assert np.array_equal(to_client["migration"] * 8, np.where(up, 0, terms.mig_bits))
        else:
            assert not sent["migration"].any()
        # the real tensors went in the wire type: bytes per element = bits / 8
        assert np.array_equal(sent["activations"][1:], b * res.act_bits_per_sample / bits * per_byte)
        # lines the model does not charge
        assert np.array_equal(sent["labels"], [0] + [8 * b] * n)
        scales = 4 if bits == 8 else 0
        assert np.array_equal(sent["scales"], [scales * (n + 1)] + [scales] * n)  # unicast per client + 1 broadcast
        assert (sent["state"][1:] > 0).all() == bool(res.synced or terms.mig_bits is not None and terms.mig_up.any())
        assert sent["pull"][0] == 0 and (sent["pull"][1:] > 0).all() == res.evaluated
        totals += res.traffic.model_bytes()
        prev = cuts
    assert max_weight_gap(local, remote) < 1e-6
    # each client counted its own sends and receives: the bytes the server counted at its end
    end = remote.client_totals()

    def count(rows, line):
        return sum(v for _, ln, v in rows if ln == line)

    for i in range(n):
        for line in ("activations", "gradients", "broadcast", "labels", "scales", "sync", "migration", "state",
                     "pull"):
            client_sent = count(end[i]["sent"], line) - count(start[i]["sent"], line)
            client_got = count(end[i]["received"], line) - count(start[i]["received"], line)
            got_here = remote._comm.received[i + 1, line] - server_received.get((i + 1, line), 0)
            sent_here = (remote._comm.sent[i + 1, line] - server_sent.get((i + 1, line), 0)
                         + remote._comm.sent[-1, line] - server_sent.get((-1, line), 0))  # the broadcast, once
            assert (client_sent, client_got) == (got_here, sent_here), (i, line)


def test_distributed_emulated_links_hold_each_transfer_for_the_model_time():
    s = scenario({"scheme": "epsl", "phi": 0.5, "sync_period": 1, "training": {"eval_every": 1000}})
    n = s.num_clients
    tables = SchemeTables.build(s, load_profile(s.model))
    remote = DistributedSplitEngine(s, initial_cut=2, cluster=cluster())
    # about 10-40 ms per transfer: long against loopback, short for the test
    links = LinkRates(np.array([4e6, 2e6]), np.array([6e6, 3e6]), broadcast_bps=2.5e6)
    prev = np.full(n, 2)
    for cut in (2, 3):
        res = remote.step(cut, links=links)
        expect = expected_phases(res, tables, links, prev)
        timing = res.timing
        for phase, value in expect.items():
            assert timing.simulated[phase] == pytest.approx(value, rel=1e-12, abs=1e-12)
            assert timing.measured[phase] >= value - 1e-4  # a hold is never shorter than the model's time
            assert timing.measured[phase] - value < 0.1  # the real transfer adds little (loopback)
        assert expect["migration"] > 0 if cut == 3 else expect["migration"] == 0
        assert expect["sync"] > 0 and expect["uplink"] > 0.01 and expect["downlink"] > 0.01
        assert set(timing.compute) == {"client_forward", "client_backward", "server"}
        prev = res.cut


def test_distributed_psltrain_env_runs_its_rounds_on_the_distributed_engine():
    over = {"num_clients": 2, "num_subchannels": 4, "training.eval_every": 2}
    cluster()  # the env's engines run on the process's shared cluster
    envs = {kind: PSLTrainEnv(action_type="assisted", overrides={**over, "training.engine": kind})
            for kind in ("inprocess", "distributed", "distributed-links")}
    outs = {}
    for kind, env in envs.items():
        env.reset(seed=7)
        env.action_space.seed(0)
        outs[kind] = [env.step(env.action_space.sample()) for _ in range(4)]
    assert isinstance(envs["distributed"].engine, DistributedSplitEngine)
    for kind in ("distributed", "distributed-links"):
        for (o1, r1, t1, u1, i1), (o2, r2, t2, u2, i2) in zip(outs["inprocess"], outs[kind]):
            assert np.allclose(o1, o2, atol=1e-6) and r1 == r2 and (t1, u1) == (t2, u2)
            assert i1["latency_s"] == i2["latency_s"] and abs(i1["loss"] - i2["loss"]) < 1e-6
    res = envs["distributed-links"].last_result
    assert res.timing.simulated["uplink"] > 0  # held for the priced round's rates
    latency = envs["distributed-links"].last_latency
    assert res.timing.simulated["uplink"] == pytest.approx(float(np.max(latency.uplink_s)), rel=1e-9)
    for env in envs.values():
        env.close()


def test_distributed_killed_client_gives_a_clear_error_not_a_hang():
    close_shared_cluster()  # one process group per process: this test needs its own cluster
    own = Cluster.local(2, timeout_s=30.0)
    try:
        engine = DistributedSplitEngine(scenario({}), initial_cut=2, cluster=own)
        engine.step()
        victim = own.procs[1]  # client 1, rank 2: a process this test started
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        start = time.monotonic()
        with pytest.raises(DistributedError, match=r"client 1 \(rank 2\) stopped answering during the uplink of "
                                                    r"round 2.*killed by SIGKILL"):
            engine.step()
        assert time.monotonic() - start < 10.0  # well before any timeout: the connection closed
        assert own.broken and all(p.poll() is not None for p in own.procs)  # the other client was stopped
        with pytest.raises(DistributedError, match="stopped earlier"):
            engine.step()
    finally:
        own.close()
    assert all(p.poll() is not None for p in own.procs)


def test_distributed_client_error_reaches_the_server():
    """A client that fails (here: no dataset files on its machine) stops, and the server's error says why."""
    close_shared_cluster()
    own = Cluster.local(2, timeout_s=30.0)
    s = scenario({"training": {"dataset": "mnist", "data_dir": "/nonexistent-psl-data"}})
    try:
        with pytest.raises(DistributedError, match=r"client 0 \(rank 1\) failed during the start-up of round 1: "
                                                    r"ValueError: training.data_dir: mnist files .* not found"):
            DistributedSplitEngine(s, cluster=own, data=load_dataset("digits"))  # the server has its data
    finally:
        own.close()
    assert all(p.poll() is not None for p in own.procs)


def test_distributed_rejects_widths_without_a_wire_type():
    with pytest.raises(ValueError, match="bits_per_element: 12 has no wire format"):
        DistributedSplitEngine(scenario({"bits_per_element": 12}), cluster=None)


@pytest.mark.slow
def test_distributed_one_command_local_launch(tmp_path):
    out = tmp_path / "rounds.json"
    cmd = [sys.executable, "-m", "psl_env.training.distributed", "--rounds", "3", "--links", "--timeout", "60",
           "--set", "num_clients=2", "--set", "num_subchannels=4", "--set", "scheme=sfl", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 3 and "measured" in proc.stdout and "simulated" in proc.stdout
    for row in rows:
        assert sum(sum(row["sent_bytes"][line]) for line in ("activations", "gradients", "broadcast", "sync",
                                                              "migration")) == row["model_bytes"]
        assert row["simulated"]["uplink"] == pytest.approx(row["model_phases"]["uplink"], rel=1e-9)


@pytest.mark.slow
def test_distributed_torchrun_style_launch(tmp_path):
    """The worker side of a torchrun launch: every rank runs ``python -m psl_env.training.distributed``
    with torchrun's environment, joining a store bound to 127.0.0.1 (torchrun's agent store)."""
    world = 3
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    store = dist.TCPStore("127.0.0.1", port, world, is_master=True, timeout=timedelta(seconds=30),
                          wait_for_workers=False, master_listen_fd=sock.detach())
    out = tmp_path / "rounds.json"
    procs = []
    try:
        for rank in range(world):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                       LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       TORCHELASTIC_USE_AGENT_STORE="True", TORCHELASTIC_RESTART_COUNT="0", GLOO_SOCKET_IFNAME="lo")
            cmd = [sys.executable, "-m", "psl_env.training.distributed", "--rounds", "2", "--timeout", "60",
                   "--set", "num_clients=2", "--set", "num_subchannels=4", "--set", "scheme=epsl",
                   "--set", "phi=0.5", "--json", str(out)]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        del store
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1][-2000:] for r in results]
    assert len(json.loads(out.read_text())) == 2 and "round    2" in results[0][0]
