"""The real split-training engine (docs/training.md), in one process or across processes, its datasets and
client partitions (needs torch)."""

from .datasets import DATASETS, Dataset, load_dataset
from .engine import EvalResult, RoundResult, SplitTrainingEngine, resolve_model
from .partition import PARTITIONS, label_skew, make_partition
from .time_to_accuracy import AccuracyCurve, step_time_s

__all__ = ["DATASETS", "Dataset", "load_dataset", "PARTITIONS", "make_partition", "label_skew",
           "SplitTrainingEngine", "RoundResult", "EvalResult", "resolve_model", "AccuracyCurve", "step_time_s",
           "DistributedSplitEngine", "Cluster", "DistributedError", "LinkRates", "make_engine"]

_DISTRIBUTED = ("DistributedSplitEngine", "Cluster", "DistributedError", "LinkRates", "make_engine")


def __getattr__(name: str):
    # imported on first use: ``python -m psl_env.training.distributed`` must find it not yet imported
    if name in _DISTRIBUTED:
        from . import distributed

        return getattr(distributed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
