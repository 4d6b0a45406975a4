"""SB3 callbacks of ``psl train``: PSL metrics in TensorBoard, evaluation against the optimizers,
and checkpoints that resume exactly.

TensorBoard tags (besides SB3's own ``rollout/``, ``train/``, ``time/``):

=============================  ==============================================================
``psl/latency_s``              mean round latency of the training rounds since the last log
``psl/uplink_phase_s`` ...     each phase: ``uplink_phase_s``, ``server_compute_s``,
                               ``downlink_phase_s``, ``sync_s``, ``migration_s``
``psl/latency_ratio``          latency over the fixed reference latency (the reward's scale)
``psl/repairs``                mean repaired clients + power repairs per round
``psl/cut``                    histogram of the chosen cuts
``psl/accuracy``               held-out accuracy (training-mode env, when its info has it)
``psl/sim_time_s``             simulated training time (training-mode env)
``psl/loss``, ``psl/test_loss``  training and held-out loss (training-mode env)
``eval/latency_s``             the policy's mean latency on the held-out evaluation episodes
``eval/<method>_latency_s``    ``epsl-bcd`` and ``fixed`` on the same episodes (same seeds)
``eval/gap_to_<method>``       policy mean latency / method mean latency - 1
``eval/decision_ms``           the policy's mean decision time per round
``eval/<phase>``               the policy's mean phases on the evaluation episodes
=============================  ==============================================================
"""

from __future__ import annotations

import csv
import pickle
import random
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import CSVOutputFormat, HumanOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from psl_env.system.latency import PHASES

PHASE_INFO_KEYS = ("uplink_phase_s", "server_compute_s", "downlink_phase_s", "sync_s", "migration_s")
TRAINING_KEYS = {"accuracy": ("accuracy", "test_accuracy"), "sim_time_s": ("sim_time_s", "simulated_time_s"),
                 "loss": ("loss",), "test_loss": ("test_loss",)}
EVAL_BASELINES = ("epsl-bcd", "fixed")


class PSLMetricsCallback(BaseCallback):
    """Logs the latency breakdown, latency ratio, repairs, cut histogram (and accuracy / simulated time
    in training mode) from the step infos, averaged between SB3's log dumps."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self._buf: dict[str, list[float]] = {}
        self._cuts: list[np.ndarray] = []
        self._hist: list[np.ndarray] = []

    def _add(self, key: str, value: float) -> None:
        self._buf.setdefault(key, []).append(value)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "latency_s" not in info:
                continue
            self._add("latency_s", info["latency_s"])
            for key in PHASE_INFO_KEYS:
                if key in info:
                    self._add(key, info[key])
            if "latency_ratio" in info:
                self._add("latency_ratio", info["latency_ratio"])
            self._add("repairs", float(info.get("repairs", 0)) + float(info.get("power_repairs", 0)))
            alloc = info.get("allocation")
            if isinstance(alloc, dict) and "cut" in alloc:
                self._cuts.append(np.asarray(alloc["cut"]).ravel())
            for tag, keys in TRAINING_KEYS.items():
                for key in keys:
                    if key in info and info[key] is not None:
                        self._add(tag, float(info[key]))
                        break
        return True

    def _on_rollout_end(self) -> None:
        self.flush()

    def flush(self) -> None:
        """Record what was collected since the last call (means; the cut histogram since the last dump)."""
        logger = self.logger
        for key, values in self._buf.items():
            finite = [v for v in values if np.isfinite(v)]
            if finite:
                logger.record_mean(f"psl/{key}", float(np.mean(finite)))
        self._buf = {}
        if self._cuts:
            # SB3's logger keeps the last value until a dump; accumulate the histogram until then.
            if "psl/cut" not in logger.name_to_value:
                self._hist = []
            self._hist.extend(self._cuts)
            self._cuts = []
            logger.record("psl/cut", th.as_tensor(np.concatenate(self._hist)), exclude=("stdout", "log", "csv", "json"))


class PolicyGapCallback(BaseCallback):
    """Every ``eval_freq`` steps: the current policy, ``epsl-bcd`` and ``fixed`` on the same held-out
    episodes (``psl bench``'s protocol: one simulator per method, seeded ``seed``, ``seed + 1``, ...);
    logs the gaps and writes ``eval.csv``; keeps the best policy as ``best_model.zip``.

    Args:
        env_config: the run's environment config (action type, codec options, reward).
        scenario: the training scenario (a ``Scenario``).
        eval_freq: steps between evaluations (0: never).
        episodes, rounds, seed: the evaluation episodes.
        out_dir: the run folder (``eval.csv``, ``best_model.zip``, ``best_vecnormalize.pkl``).
        masked: the policy needs action masks (MaskablePPO).
        on_eval: called with each evaluation's row once it is written.
    """

    def __init__(self, env_config: dict, scenario: Any, eval_freq: int, episodes: int = 3, rounds: int = 50,
                 seed: int = 10_000, out_dir: str | Path | None = None, masked: bool = False,
                 verbose: int = 0, on_eval: Callable[[dict], None] | None = None) -> None:
        super().__init__(verbose)
        self.on_eval = on_eval
        self.env_config = env_config
        self.scenario = scenario
        self.eval_freq = int(eval_freq)
        self.episodes, self.rounds, self.seed = int(episodes), int(rounds), int(seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.masked = masked
        self._last = 0
        self._baselines: dict[str, dict] | None = None
        self.best = np.inf
        self.history: list[dict] = []

    def _init_callback(self) -> None:
        self._last = self.num_timesteps - self.num_timesteps % max(self.eval_freq, 1)
        if self.out_dir is not None and (self.out_dir / "eval.csv").is_file():
            with (self.out_dir / "eval.csv").open() as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                self.best = min(float(r["latency_s"]) for r in rows)

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps - self._last >= self.eval_freq:
            self._last = self.num_timesteps - self.num_timesteps % self.eval_freq
            self.evaluate()
        return True

    def _normalizer(self) -> VecNormalize | None:
        env = self.model.get_env()
        while env is not None:
            if isinstance(env, VecNormalize):
                return env
            env = getattr(env, "venv", None)
        return None

    def evaluate(self) -> dict:
        """Run the evaluation now; returns the logged figures."""
        from agents.registry import make_decision_maker
        from agents.sb3_policy import SB3Policy
        from psl_env.system.latency import LatencyModel
        from psl_env.models.profile import load_profile

        from .bench import run_benchmark

        scen = self.scenario
        model = LatencyModel(scen, load_profile(scen.model))
        common = dict(rounds=self.rounds, episodes=self.episodes, seed=self.seed, num_resamples=10)
        if self._baselines is None:
            dms = {m: make_decision_maker(m, model, self.seed) for m in EVAL_BASELINES}
            res = run_benchmark(scen, list(EVAL_BASELINES), decision_makers=dms, **common)
            self._baselines = {m: res["methods"][m] for m in EVAL_BASELINES}
        policy = SB3Policy(model, self.model, self.env_config, self._normalizer(), masked=self.masked)
        res = run_benchmark(scen, ["policy"], decision_makers={"policy": policy}, **common)
        mine = res["methods"]["policy"]
        latency = float(mine["mean_latency_s"])
        row = {"timesteps": int(self.num_timesteps), "latency_s": latency,
               "decision_ms": float(mine["decision_ms_mean"]), "repairs": int(policy.repairs)}
        self.logger.record("eval/latency_s", latency)
        self.logger.record("eval/decision_ms", row["decision_ms"])
        self.logger.record("eval/repairs", row["repairs"])
        for phase in PHASES:
            value = mine.get("phases_mean_s", {}).get(phase)
            if value is not None:
                self.logger.record(f"eval/{phase}_s", float(value))
        for name, stats in self._baselines.items():
            base = float(stats["mean_latency_s"])
            row[f"{name}_latency_s"] = base
            row[f"gap_to_{name}"] = latency / base - 1.0
            self.logger.record(f"eval/{name}_latency_s", base)
            self.logger.record(f"eval/gap_to_{name}", row[f"gap_to_{name}"])
        self.history.append(row)
        if self.out_dir is not None:
            path = self.out_dir / "eval.csv"
            new = not path.is_file()
            with path.open("a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(row), lineterminator="\n")
                if new:
                    writer.writeheader()
                writer.writerow(row)
            if latency < self.best:
                self.best = latency
                self.model.save(self.out_dir / "best_model.zip")
                norm = self._normalizer()
                if norm is not None:
                    norm.save(str(self.out_dir / "best_vecnormalize.pkl"))
        if self.verbose:
            gaps = ", ".join(f"{k} {v:+.1%}" for k, v in row.items() if k.startswith("gap_to_"))
            print(f"eval at {self.num_timesteps} steps: latency {latency:.4g} s ({gaps})")
        self.logger.dump(self.num_timesteps)
        if self.on_eval is not None:
            self.on_eval(dict(row))
        return row


class TqdmProgressCallback(BaseCallback):
    """A plain ``tqdm`` progress bar (SB3's own ``progress_bar=True`` needs ``rich`` as well)."""

    def __init__(self, total: int) -> None:
        super().__init__(0)
        self.total = int(total)
        self.bar = None

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, unit="step", desc="train")

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def sb3_progress_bar_available() -> bool:
    try:
        import rich  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# checkpoints

def _vec_chain(env: VecEnv) -> list[VecEnv]:
    chain = []
    while env is not None:
        chain.append(env)
        env = getattr(env, "venv", None)
    return chain


def capture_env_state(env: VecEnv) -> dict:
    """What it takes to continue the env stream exactly: the batched env, monitor counters, the
    normalizer's running returns (None where an env cannot be captured, e.g. subprocesses)."""
    state: dict[str, Any] = {"venv": None, "monitor": None, "returns": None}
    for link in _vec_chain(env):
        if isinstance(link, VecNormalize):
            state["returns"] = np.array(link.returns, copy=True)
        elif isinstance(link, VecMonitor):
            state["monitor"] = {"episode_returns": link.episode_returns.copy(),
                                "episode_lengths": link.episode_lengths.copy(),
                                "episode_count": link.episode_count}
        elif type(link).__name__ == "BatchedVecEnv":
            state["venv"] = link
    return state


def restore_env_state(env: VecEnv, state: dict) -> bool:
    """Put a captured env state back into ``env``'s chain; False when the base env could not be captured."""
    ok = state.get("venv") is not None
    chain = _vec_chain(env)
    for idx, link in enumerate(chain):
        if isinstance(link, VecNormalize) and state.get("returns") is not None:
            link.returns = state["returns"]
        elif isinstance(link, VecMonitor) and state.get("monitor") is not None:
            for key, value in state["monitor"].items():
                setattr(link, key, value)
        if ok and idx + 1 < len(chain) and type(chain[idx + 1]).__name__ == "BatchedVecEnv":
            old = chain[idx + 1]
            new = state["venv"]
            link.venv = new
            old.close()
    return ok


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": th.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(state["torch"])


class StopOnRequest(BaseCallback):
    """Ends ``learn`` cleanly after the current step once ``requested`` is set (e.g. by Ctrl-C), so the
    model and the env are in a consistent state for a last checkpoint."""

    def __init__(self) -> None:
        super().__init__(0)
        self.requested = False

    def _on_step(self) -> bool:
        return not self.requested


class ExactCheckpointCallback(BaseCallback):
    """Saves a checkpoint every ``save_freq`` steps, at the start of a rollout (after the previous
    update, before new data), where training can continue bit for bit:

    ``checkpoints/ckpt_<steps>_steps.zip`` (the model, loadable with SB3's ``load``),
    ``ckpt_<steps>_vecnormalize.pkl`` (``VecNormalize.load``), ``ckpt_<steps>_replay_buffer.pkl``
    (off-policy algorithms) and ``ckpt_<steps>_state.pkl`` (the batched env, monitor counters and the
    Python / NumPy / torch random states), each written atomically, then listed in
    ``checkpoints/manifest.json``.
    """

    def __init__(self, save_dir: str | Path, save_freq: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.save_dir = Path(save_dir)
        self.save_freq = int(save_freq)
        self._last = 0

    def _init_callback(self) -> None:
        self._last = self.num_timesteps - self.num_timesteps % max(self.save_freq, 1)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.save_freq > 0 and self.num_timesteps - self._last >= self.save_freq:
            self._last = self.num_timesteps - self.num_timesteps % self.save_freq
            self.save()

    def save(self) -> Path:
        return save_checkpoint(self.model, self.save_dir, self.verbose)


def save_policy(model: Any, zip_path: Path, norm_path: Path) -> dict[str, Path]:
    """Write the model (SB3's zip) and its ``VecNormalize`` statistics, if any, each atomically;
    returns the files written by role (``model``, ``vecnormalize``)."""
    from .run_folder import write_atomic  # noqa: PLC0415

    def save_model(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            model.save(fh)

    write_atomic(zip_path, save_model)
    files = {"model": zip_path}
    norm = model.get_vec_normalize_env()
    if norm is not None:
        write_atomic(norm_path, lambda tmp: norm.save(str(tmp)))
        files["vecnormalize"] = norm_path
    return files


def save_checkpoint(model: Any, save_dir: Path, verbose: int = 0) -> Path:
    """Write a checkpoint of ``model`` into ``save_dir`` (``RUN/checkpoints``): every file atomically,
    then its entry in the manifest (see ``trainers.run_folder``). Returns the model zip's path."""
    from .run_folder import add_to_manifest, table_rows, write_atomic  # noqa: PLC0415

    save_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"ckpt_{model.num_timesteps}"
    files = save_policy(model, save_dir / f"{prefix}_steps.zip", save_dir / f"{prefix}_vecnormalize.pkl")
    if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
        files["replay_buffer"] = save_dir / f"{prefix}_replay_buffer.pkl"

        def save_buffer(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                model.save_replay_buffer(fh)

        write_atomic(files["replay_buffer"], save_buffer)
    state = {"env": capture_env_state(model.get_env()), "rng": rng_state(), "num_timesteps": model.num_timesteps}
    try:
        blob = pickle.dumps(state)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        # an env that cannot be pickled: resume will start fresh episodes (still loads the model)
        warnings.warn(f"checkpoint: the environment cannot be saved ({err}); resume will reset it")
        state["env"]["venv"] = None
        blob = pickle.dumps(state)
    files["state"] = save_dir / f"{prefix}_state.pkl"
    write_atomic(files["state"], lambda tmp: tmp.write_bytes(blob))
    run = save_dir.parent
    add_to_manifest(save_dir, model.num_timesteps, files,
                    {"progress": table_rows(run / "tb" / "progress.csv"), "eval": table_rows(run / "eval.csv")})
    if verbose:
        print(f"checkpoint at {model.num_timesteps} steps: {files['model']}")
    return files["model"]


class _ContinuedCSV(CSVOutputFormat):
    """SB3's ``progress.csv`` writer, appending to the table a resumed run already has."""

    def __init__(self, filename: Path, keys: list[str]) -> None:  # noqa: D107 - no super().__init__: it truncates
        self.file = open(filename, "r+" if keys else "w+")  # noqa: SIM115 - closed by the logger
        self.file.seek(0, 2)
        self.keys = list(keys)
        self.separator = ","
        self.quotechar = '"'


class _ContinuedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard writer for a resumed run: events the stopped run logged after the checkpoint
    (steps >= ``purge_step``) are hidden, so the curves continue instead of doubling back."""

    def __init__(self, folder: Path, purge_step: int) -> None:  # noqa: D107
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
        self._is_closed = False


def continued_logger(folder: Path, csv_keys: list[str], purge_step: int, stdout: bool = False) -> Logger:
    """The logger of a resumed run: TensorBoard and ``progress.csv`` in ``folder`` continue."""
    formats = [_ContinuedTensorBoard(folder, purge_step), _ContinuedCSV(folder / "progress.csv", csv_keys)]
    if stdout:
        formats.append(HumanOutputFormat(sys.stdout))
    return Logger(str(folder), formats)


def load_state(path: Path) -> dict:
    """A checkpoint's ``_state.pkl`` (the env, monitor counters and random states), read with SB3's
    pickle loader like its replay buffers."""
    from stable_baselines3.common.save_util import load_from_pkl  # noqa: PLC0415

    return load_from_pkl(str(path))


__all__ = ["EVAL_BASELINES", "ExactCheckpointCallback", "PSLMetricsCallback", "PolicyGapCallback",
           "StopOnRequest", "TqdmProgressCallback", "sb3_progress_bar_available",
           "capture_env_state", "continued_logger", "load_state", "save_policy", "restore_env_state", "rng_state", "save_checkpoint", "set_rng_state"]
