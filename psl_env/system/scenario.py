"""The scenario: a validated config of devices, channel, model, scheme and training.

A scenario is YAML (``yaml.safe_load``) or a dict, merged over the defaults below, overridden by
``key=value`` strings (values parsed as YAML scalars, dotted keys reach nested settings) and
validated field by field. Every field carries its allowed range and where its default comes from;
``docs/scenario.md`` documents them (``scenario_reference_markdown`` renders the table).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..config_files import brief, clip, locate, read_yaml, shipped

SCHEMES = ("psl", "epsl", "sfl", "edgesplit")


class ScenarioError(ValueError):
    """A scenario value is invalid; the message names the key and what is allowed."""


def _f(default: Any, doc: str, source: str = "ours", *, low: float | None = None,
       high: float | None = None, choices: Iterable[Any] | None = None, nullable: bool = False,
       low_open: bool = False) -> Any:
    meta = {"doc": doc, "source": source, "low": low, "high": high, "low_open": low_open,
            "choices": tuple(choices) if choices is not None else None, "nullable": nullable}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DeviceClass:
    """One named class of identical-in-distribution devices (``devices.kind: classes``)."""

    name: str = _f("device", "class name")
    count: int = _f(1, "number of clients of this class", low=1, high=1000)
    compute_flops: float = _f(5e10, "compute rate f_i, FLOP/s", low=1e6, high=1e16)
    power_budget_w: float = _f(0.2, "uplink power budget P_i, W", low=1e-4, high=10.0)
    distance_m: float = _f(150.0, "distance to the server, m", low=1.0, high=10000.0)
    memory_bytes: float = _f(4e9, "memory cap, bytes", low=1e6, high=1e13)


@dataclass(frozen=True)
class DevicesConfig:
    kind: str = _f("loguniform", "how client devices are drawn: `loguniform` ranges or explicit `classes`",
                   choices=("loguniform", "classes"))
    compute_flops: list = _f([5e9, 2e11], "[low, high] client compute f_i, FLOP/s, log-uniform (>= 20x range)",
                             "typical", low=1e6, high=1e16)
    power_budget_w: list = _f([0.2, 0.2], "[low, high] client power budget P_i, W, uniform (23 dBm)",
                              "3GPP-style typical", low=1e-4, high=10.0)
    distance_m: list = _f([50.0, 300.0], "[low, high] client distance to the server, m, uniform",
                          "typical", low=1.0, high=10000.0)
    memory_bytes: list = _f([2e9, 8e9], "[low, high] client memory cap, bytes, uniform", low=1e6, high=1e13)
    dataset_size: int = _f(1000, "samples per client (latency scenarios; training uses the partition)",
                           low=1, high=10**9)
    classes: list = _f([], "explicit device classes (`kind: classes`): list of {name, count, compute_flops, "
                           "power_budget_w, distance_m, memory_bytes}")
    resample: str = _f("episode", "draw devices anew every `episode` or once per scenario seed (`fixed`)",
                       choices=("episode", "fixed"))


@dataclass(frozen=True)
class ServerConfig:
    compute_flops: float = _f(2e13, "edge server compute f_s, FLOP/s", "typical", low=1e6, high=1e18)
    power_per_subchannel_w: float = _f(1.0, "server downlink power per subchannel Ps, W", "typical",
                                       low=1e-4, high=100.0)


@dataclass(frozen=True)
class ChannelConfig:
    kind: str = _f("gauss-markov", "channel model: `gauss-markov` (sampled), `trace` (read from `trace_file`) or "
                                   "another registered with `psl_env.system.channels.register_channel`")
    subchannel_bw_hz: float = _f(1e6, "bandwidth W of one subchannel, Hz", "typical", low=1e3, high=1e9)
    noise_psd_dbm_per_hz: float = _f(-174.0, "thermal noise power spectral density N0, dBm/Hz (290 K)",
                                     "physics", low=-220.0, high=-100.0)
    noise_figure_server_db: float = _f(5.0, "receiver noise figure of the server (uplink), dB", "3GPP typical "
                                                                                                "base station",
                                       low=0.0, high=30.0)
    noise_figure_client_db: float = _f(9.0, "receiver noise figure of a client device (downlink), dB",
                                       "3GPP typical UE", low=0.0, high=30.0)
    se_cap_bps_per_hz: float = _f(7.40625, "highest spectral efficiency of a subchannel, bit/s/Hz: 3GPP NR "
                                         "256-QAM at code rate 948/1024 (8 x 948/1024); null: uncapped Shannon",
                                "3GPP NR (TS 38.214 MCS table 2)", low=0.01, high=100.0, nullable=True)
    snr_gap_db: float = _f(0.0, "SNR gap Gamma between the Shannon rate and the modulation and coding in use, dB "
                                "(rate W log2(1 + SNR / Gamma))", "ours", low=0.0, high=20.0)
    small_scale: str = _f("per-round", "fast fading over a round: `per-round` (one Rayleigh draw held for the "
                                       "whole round, EPSL's quasi-static assumption) or `averaged` (the round's "
                                       "rate is the ergodic rate over many fading blocks, right when rounds last "
                                       "longer than the coherence time; decisions see large-scale gains)",
                          "EPSL (per-round)", choices=("per-round", "averaged"))
    pathloss_intercept_db: float = _f(128.1, "path loss at 1 km, dB (PL = A + B log10(d/km))", "3GPP-style typical",
                                      low=0.0, high=300.0)
    pathloss_slope_db: float = _f(37.6, "path loss slope B, dB per decade of distance", "3GPP-style typical",
                                  low=0.0, high=100.0)
    shadowing_db: float = _f(8.0, "log-normal shadowing standard deviation, dB (per client per episode)",
                             "3GPP-style typical", low=0.0, high=30.0)
    correlation: Any = _f(0.9, "Gauss-Markov fading correlation a in [0, 1] between rounds, or `doppler` for "
                               "a = J0(2 pi f_D tau) with tau the previous round's latency", "ours")
    carrier_hz: float = _f(3.5e9, "carrier frequency (Doppler), Hz", "typical", low=1e6, high=1e12)
    speed_mps: list = _f([1.0, 3.0], "[low, high] client speed (Doppler, mobility), m/s", "pedestrian, typical",
                         low=0.0, high=100.0)
    mobility: bool = _f(False, "move clients every round by speed x round latency (updates distances)")
    mobility_step_s: float = _f(None, "with mobility, the seconds a round lasts for the walk (null: the round's "
                                      "latency; a number makes the walk independent of the decisions)", "ours",
                                low=0.0, high=1e6, nullable=True)
    trace_file: Any = _f(None, "gains trace (`.npz` with `gains` [T,N,M] or a round-trace `.jsonl`) for "
                               "`kind: trace`", nullable=True)


@dataclass(frozen=True)
class DynamicsConfig:
    """What changes between rounds besides the channel: background load, churn, energy (all off by default)."""

    load_levels: list = _f([1.0], "the share of a device's compute rate left by background load, one per state of "
                                   "a Markov chain per device (e.g. [1.0, 0.5, 0.1]); [1.0]: no load",
                           "ours (issue scenario dynamic-edge)")
    load_stay: float = _f(1.0, "probability that a device's load state stays the same next round; otherwise it "
                               "jumps to another state uniformly", "ours", low=0.0, high=1.0)
    churn_leave: float = _f(0.0, "probability that a present device leaves before the next round (it gets no "
                                 "subchannels and is not waited for; it keeps its client-side state)", "ours",
                            low=0.0, high=1.0)
    churn_rejoin: float = _f(0.0, "probability that an absent device comes back before the next round", "ours",
                             low=0.0, high=1.0)
    kappa: float = _f(1e-28, "effective switched capacitance of the devices' processors: compute energy is kappa "
                             "f^2 joules per FLOP at compute rate f (FLOP/s)", "DVFS model, typical", low=0.0,
                      high=1e-20)
    battery_j: Any = _f(None, "energy budget of every device for an episode, J (a device whose battery is empty "
                              "leaves for good); null: unlimited", "ours", nullable=True)
    energy_weight: float = _f(0.0, "weight of the energy (J) against the reference allocation's in the reward: "
                                   "r = -(T / T_ref + w E / E_ref)", "ours", low=0.0, high=1000.0)
    present_clients: Any = _f(None, "[low, high]: clients taking part in an episode, drawn uniformly per episode; "
                                    "`num_clients` is then the maximum N and clients n..N-1 are absent for the "
                                    "whole episode (padding: no subchannel, not waited for), so one policy serves "
                                    "every N up to it; null: all `num_clients`", "ours", nullable=True)


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of the real split-training engine (PSLTrain-v0, ``psl bench --train``)."""

    dataset: str = _f("digits", "dataset: `digits` (offline, scikit-learn), `mnist`, `fashion-mnist`, `cifar10`",
                      choices=("digits", "mnist", "fashion-mnist", "cifar10"))
    data_dir: Any = _f(None, "folder with the standard dataset files (MNIST/Fashion-MNIST/CIFAR-10)",
                       nullable=True)
    partition: str = _f("iid", "client data partition", choices=("iid", "dirichlet"))
    dirichlet_alpha: float = _f(0.5, "Dirichlet concentration of the label skew (smaller = more skewed)",
                                low=1e-3, high=1e6)
    optimizer: str = _f("sgd", "client and server optimizer", choices=("sgd", "adam"))
    lr: float = _f(0.05, "learning rate", low=1e-7, high=10.0)
    momentum: float = _f(0.9, "SGD momentum", low=0.0, high=0.999)
    weight_decay: float = _f(0.0, "L2 weight decay", low=0.0, high=1.0)
    augment_shift: int = _f(0, "random translation of every training image by up to k pixels along each axis "
                               "(zero padding), drawn per sample and iteration; 0 = off", low=0, high=64)
    local_iterations: int = _f(1, "real training iterations per environment step", low=1, high=1000)
    eval_every: int = _f(10, "evaluate held-out accuracy every k rounds", low=1, high=10**6)
    eval_model: str = _f("clients", "what the held-out accuracy measures: `clients`, the mean over clients of "
                                    "each client's composed model (its blocks + the server's), or `averaged`, one "
                                    "model averaging the copies the clients use, weighted by data size",
                         choices=("clients", "averaged"))
    test_fraction: float = _f(0.2, "held-out fraction of the dataset", low=0.01, high=0.9)
    target_accuracy: float = _f(0.95, "held-out accuracy at which a training episode terminates",
                                low=0.0, high=1.0)
    torch_threads: int = _f(1, "torch intra-op threads of the engine", low=1, high=256)
    engine: str = _f("inprocess", "where the real training runs: `inprocess` (the clients and the server in this "
                                  "process), `distributed` (one process per client over torch.distributed, gloo; "
                                  "the server here; docs/training.md) or `distributed-links` (distributed, every "
                                  "transfer held for bits / rate of the priced round: emulated links)",
                     choices=("inprocess", "distributed", "distributed-links"))


@dataclass(frozen=True)
class Scenario:
    """A complete, validated scenario. Build with ``load_scenario``."""

    name: str = _f("default", "scenario name")
    num_clients: int = _f(5, "N, number of clients", "typical", low=1, high=1000)
    num_subchannels: int = _f(10, "M, number of OFDMA subchannels (>= N)", "typical", low=1, high=10000)
    model: str = _f("resnet18-32", "model profile: a shipped name or a path to a profile JSON")
    scheme: str = _f("epsl", "`psl`, `epsl` (last-layer gradient aggregation), `sfl` (PSL + FedAvg every "
                             "`sync_period` rounds), `edgesplit` (per-device cuts)", choices=SCHEMES)
    phi: float = _f(0.5, "EPSL aggregation ratio phi (0 = plain PSL); must be 0 for psl, sfl and edgesplit",
                    "EPSL", low=0.0, high=1.0)
    batch_size: int = _f(16, "b, per-client mini-batch", "typical", low=1, high=100000)
    csi: str = _f("perfect", "`perfect`: decisions see this round's gains; `delayed`: last round's",
                  choices=("perfect", "delayed"))
    seed: int = _f(0, "seed of devices, channel and training", low=0, high=2**32 - 1)
    rounds: int = _f(100, "rounds per episode", low=1, high=10**8)
    downlink: str = _f("broadcast", "downlink model: `broadcast` (EPSL), `unicast` or `ignore`",
                       "EPSL (broadcast)", choices=("broadcast", "unicast", "ignore"))
    sync_period: int = _f(None, "FedAvg of client-side models every K rounds (0 = never); unset: the scheme's "
                                "own, 1 for `sfl` and `edgesplit` (client-side models of the same blocks "
                                "aggregated every round), 0 for `psl` and `epsl`", "SplitFed, EdgeSplit",
                          low=0, high=10**8, nullable=True)
    migration: bool = _f(True, "charge the migration of blocks when a cut changes between rounds")
    bits_per_element: int = _f(32, "bits per transmitted activation/gradient element (32: fp32; 16 and 8 model "
                                   "compressed transfers); parameters (sync, migration) keep their own width",
                               low=1, high=64)
    round_structure: str = _f("phases", "`phases`: every client uploads, then the server computes, then every "
                                        "client downloads (barriers between phases; EPSL, SplitFed); `per-device`: "
                                        "each device's own chain of compute, upload, its server part, download "
                                        "and backward, the round ending with the slowest device (EdgeSplit's "
                                        "makespan; our reading of the paper; needs phi = 0)",
                              choices=("phases", "per-device"))
    devices: DevicesConfig = field(default_factory=DevicesConfig, metadata={"doc": "client devices"})
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"doc": "edge server"})
    channel: ChannelConfig = field(default_factory=ChannelConfig, metadata={"doc": "wireless channel"})
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig,
                                     metadata={"doc": "background load, churn and energy"})
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"doc": "real split training"})

    @property
    def per_device_cuts(self) -> bool:
        """True when every client has its own cut (EdgeSplit)."""
        return self.scheme == "edgesplit"

    @property
    def has_dynamics(self) -> bool:
        """Background load, churn, a battery or a range of present clients: the observation then carries
        the devices' state."""
        d = self.dynamics
        return len(d.load_levels) > 1 or d.churn_leave > 0 or d.battery_j is not None or d.present_clients is not None

    @property
    def effective_sync_period(self) -> int:
        """Rounds between FedAvg syncs (0 = never): ``sync_period``, or the scheme's default."""
        if self.sync_period is None:
            return 1 if self.scheme in ("sfl", "edgesplit") else 0
        return self.sync_period

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> "Scenario":
        """A new validated scenario with top-level or dotted-key overrides."""
        return build_scenario(self.to_dict(), overrides)


# ---------------------------------------------------------------------------------------------------
# loading and validation

# Sections of a scenario that are dataclasses of their own.
_NESTED: dict[type, dict[str, type]] = {
    Scenario: {"devices": DevicesConfig, "server": ServerConfig, "channel": ChannelConfig,
               "dynamics": DynamicsConfig, "training": TrainingConfig},
}


def parse_overrides(items: Iterable[str] | dict | None) -> dict[str, Any]:
    """``["phi=0.3", "channel.correlation=0.5"]`` -> ``{"phi": 0.3, "channel.correlation": 0.5}``."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    if isinstance(items, str):
        items = [items]  # one "key=value" string, not its characters
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ScenarioError(f"override {brief(item)}: expected key=value")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key:
            raise ScenarioError(f"override {brief(item)}: empty key")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def _apply_override(cfg: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if part not in node:
            sections = sorted(k for k, v in node.items() if isinstance(v, dict))
            if sections:
                raise ScenarioError(f"{clip(here)}: unknown section; allowed: {sections}")
            raise ScenarioError(f"{clip(here)}: unknown key; allowed: {sorted(node)}")
        if not isinstance(node[part], dict):
            raise ScenarioError(f"{here}: is a value, not a section (no dotted keys below it); "
                                f"set it with {here}=VALUE")
        node = node[part]
    if parts[-1] not in node:
        raise ScenarioError(f"{clip(key)}: unknown key; allowed: {sorted(node)}")
    node[parts[-1]] = value


def _merge(base: dict, user: dict, prefix: str = "") -> dict:
    for key, value in user.items():
        full = clip(f"{prefix}{key}")
        if key not in base:
            raise ScenarioError(f"{full}: unknown key; allowed: {sorted(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ScenarioError(f"{full}: expected a mapping of {sorted(base[key])}, got {brief(value)}")
            _merge(base[key], value, full + ".")
        else:
            base[key] = value
    return base


def _describe(meta: dict) -> str:
    if meta.get("choices"):
        return f"one of {list(meta['choices'])}"
    lo, hi = meta.get("low"), meta.get("high")
    if lo is not None and hi is not None:
        return f"in [{lo:g}, {hi:g}]"
    return "a valid value"


def _check_number(key: str, value: Any, kind: type, meta: dict) -> Any:
    if isinstance(value, str):
        # YAML 1.1 reads "1e9" (no dot) as a string; accept numeric strings for numeric keys.
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ScenarioError(f"{key}: expected an integer {_describe(meta)}, got {brief(value)}")
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{key}: expected a number {_describe(meta)}, got {brief(value)}")
        value = float(value)
    lo, hi = meta.get("low"), meta.get("high")
    if (lo is not None and value < lo) or (hi is not None and value > hi) or value != value:
        raise ScenarioError(f"{key}: {brief(value)} is out of range; allowed {_describe(meta)}")
    return value


def _check_field(key: str, value: Any, kind: Any, meta: dict) -> Any:
    if value is None:
        if meta.get("nullable"):
            return None
        raise ScenarioError(f"{key}: must be set ({_describe(meta)})")
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise ScenarioError(f"{key}: {brief(value)} is not allowed; allowed: {list(meta['choices'])}")
        return value
    if kind in (int, float):
        return _check_number(key, value, kind, meta)
    if kind is bool:
        if not isinstance(value, bool):
            raise ScenarioError(f"{key}: expected true or false, got {brief(value)}")
        return value
    if kind is str:
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{key}: expected a non-empty string, got {brief(value)}")
        return value
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise ScenarioError(f"{key}: expected a list, got {brief(value)}")
        if meta.get("low") is not None:  # a [low, high] numeric range
            if len(value) != 2:
                raise ScenarioError(f"{key}: expected [low, high] with values {_describe(meta)}, got {brief(value)}")
            lo, hi = (_check_number(f"{key}[{i}]", v, float, meta) for i, v in enumerate(value))
            if lo > hi:
                raise ScenarioError(f"{key}: low {lo:g} exceeds high {hi:g}")
            return [lo, hi]
        return list(value)
    return value


def _build(cls: type, cfg: dict, prefix: str = "") -> Any:
    nested = _NESTED.get(cls, {})
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, fld in hints.items():
        key = f"{prefix}{name}"
        value = cfg[name]
        if name in nested:
            kwargs[name] = _build(nested[name], value, key + ".")
            continue
        kind = {"int": int, "float": float, "str": str, "bool": bool, "list": list}.get(
            fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", ""), Any)
        kwargs[name] = _check_field(key, value, kind, dict(fld.metadata))
    return cls(**kwargs)


def _defaults() -> dict:
    return dataclasses.asdict(Scenario())


def _validate_classes(classes: list, prefix: str) -> list[dict]:
    names = {f.name for f in dataclasses.fields(DeviceClass)}
    out = []
    for i, item in enumerate(classes):
        key = f"{prefix}[{i}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{key}: expected a mapping of {sorted(names)}")
        merged = _merge(dataclasses.asdict(DeviceClass()), item, key + ".")
        out.append(dataclasses.asdict(_build(DeviceClass, merged, key + ".")))
    return out


def _cross_checks(s: Scenario) -> None:
    if s.num_subchannels < s.num_clients:
        raise ScenarioError(f"num_subchannels: {s.num_subchannels} is fewer than num_clients={s.num_clients}; "
                            f"allowed: num_subchannels >= num_clients (every client needs a subchannel)")
    if s.scheme in ("psl", "sfl", "edgesplit") and s.phi != 0.0:
        extra = " (per-device cuts require phi = 0)" if s.scheme == "edgesplit" else ""
        raise ScenarioError(f"phi: {s.phi:g} is not allowed with scheme={s.scheme!r}{extra}; allowed: 0")
    levels = s.dynamics.load_levels
    if not levels or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1 for v in levels):
        raise ScenarioError(f"dynamics.load_levels: {levels!r} is not allowed; allowed: a list of shares in (0, 1]")
    if s.dynamics.battery_j is not None and (isinstance(s.dynamics.battery_j, bool) or not isinstance(
            s.dynamics.battery_j, (int, float)) or s.dynamics.battery_j <= 0):
        raise ScenarioError(f"dynamics.battery_j: {s.dynamics.battery_j!r} is not allowed; allowed: a number > 0 or null")
    present = s.dynamics.present_clients
    if present is not None and (not isinstance(present, (list, tuple)) or len(present) != 2 or any(
            isinstance(v, bool) or not isinstance(v, int) for v in present)
            or not 1 <= present[0] <= present[1] <= s.num_clients):
        raise ScenarioError(f"dynamics.present_clients: {brief(present)} is not allowed; allowed: [low, high] "
                            f"integers with 1 <= low <= high <= num_clients={s.num_clients}, or null")
    if s.round_structure == "per-device" and s.phi != 0.0:
        raise ScenarioError(f"round_structure: 'per-device' is not allowed with phi={s.phi:g} (the aggregated "
                            "rows tie the clients together); allowed: phi = 0, or round_structure 'phases'")
    corr = s.channel.correlation
    if corr != "doppler" and (isinstance(corr, bool) or not isinstance(corr, (int, float)) or not 0 <= corr <= 1):
        raise ScenarioError(f"channel.correlation: {brief(corr)} is not allowed; allowed: a number in [0, 1] or "
                            "'doppler'")
    if s.devices.kind == "classes":
        total = sum(c["count"] for c in s.devices.classes)
        if total != s.num_clients:
            raise ScenarioError(f"devices.classes: counts sum to {total}, but num_clients={s.num_clients}; "
                                "allowed: counts summing to num_clients")
    if s.devices.kind != "classes" and s.devices.classes:
        raise ScenarioError(f"devices.classes: given, but devices.kind is {s.devices.kind!r}; allowed: "
                            "devices.kind: classes with a list of classes, or no classes")
    for key, value in (("channel.trace_file", s.channel.trace_file), ("training.data_dir", s.training.data_dir)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ScenarioError(f"{key}: expected a path (a non-empty string), got {brief(value)}")
    if s.channel.trace_file is not None and Path(s.channel.trace_file).is_dir():
        raise ScenarioError(f"channel.trace_file: {brief(s.channel.trace_file)} is a folder; allowed: a .npz or "
                            ".jsonl trace file")
    from .channels import CHANNELS  # noqa: PLC0415 - the channel models import this module

    if s.channel.kind not in CHANNELS:
        raise ScenarioError(f"channel.kind: {brief(s.channel.kind)} is not allowed; allowed: {sorted(CHANNELS)}")
    if s.channel.kind == "trace" and not s.channel.trace_file:
        raise ScenarioError("channel.trace_file: must be set when channel.kind is 'trace'")


def build_scenario(cfg: dict | None = None, overrides: Iterable[str] | dict | None = None) -> Scenario:
    """Defaults, then ``cfg`` (a scenario mapping), then ``overrides``; validated."""
    merged = _defaults()
    if cfg is not None:
        if not isinstance(cfg, dict):
            raise ScenarioError(f"scenario: expected a mapping of {sorted(merged)}, got {type(cfg).__name__}")
        _merge(merged, copy.deepcopy(cfg))
    for key, value in parse_overrides(overrides).items():
        _apply_override(merged, key, value)
    classes = merged["devices"].get("classes") or []
    if not isinstance(classes, list):
        raise ScenarioError("devices.classes: expected a list of device classes")
    merged["devices"]["classes"] = _validate_classes(classes, "devices.classes")
    if isinstance(merged["channel"].get("correlation"), int) and not isinstance(merged["channel"]["correlation"], bool):
        merged["channel"]["correlation"] = float(merged["channel"]["correlation"])
    scenario = _build(Scenario, merged)
    _cross_checks(scenario)
    return scenario


def available_scenarios() -> list[str]:
    """Names of the shipped scenarios (``configs/scenarios`` of the repository, installed with the package)."""
    return list(shipped("scenarios"))


def load_scenario(name_or_path: str | Path | dict | Scenario | None = None,
                  overrides: Iterable[str] | dict | None = None) -> Scenario:
    """A scenario by shipped name, YAML path, mapping or ``Scenario``, with overrides applied.

    A string names an existing file first, then a shipped scenario.
    """
    if isinstance(name_or_path, Scenario):
        return name_or_path.replace(**parse_overrides(overrides)) if overrides else name_or_path
    if name_or_path is None or isinstance(name_or_path, dict):
        return build_scenario(name_or_path, overrides)
    if not isinstance(name_or_path, (str, Path)):
        raise ScenarioError(f"scenario: expected a shipped name, a YAML path, a mapping or a Scenario, got "
                            f"{type(name_or_path).__name__}")
    source, stem = locate(name_or_path, "scenarios", "scenario", ScenarioError)
    cfg = read_yaml(source, f"scenario {brief(str(name_or_path))}", ScenarioError)
    if isinstance(cfg, dict) and "name" not in cfg:
        cfg["name"] = stem
    return build_scenario(cfg, overrides)


def scenario_reference_markdown() -> str:
    """The table of every key, its default, allowed values and provenance (for docs/scenario.md)."""
    rows = ["| key | default | allowed | source | meaning |", "|---|---|---|---|---|"]

    def walk(cls: type, prefix: str) -> None:
        nested = _NESTED.get(cls, {})
        inst = cls()
        for fld in dataclasses.fields(cls):
            key = prefix + fld.name
            if fld.name in nested:
                walk(nested[fld.name], key + ".")
                continue
            meta = fld.metadata
            default = getattr(inst, fld.name)
            allowed = _describe(dict(meta)) if (meta.get("choices") or meta.get("low") is not None) else ""
            rows.append(f"| `{key}` | `{default!r}` | {allowed} | {meta.get('source', '')} | {meta.get('doc', '')} |")

    walk(Scenario, "")
    return "\n".join(rows) + "\n"
