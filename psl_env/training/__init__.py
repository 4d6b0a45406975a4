"""The real split-training engine (docs/training.md), in one process or across processes, its datasets and
client partitions (needs torch)."""

from .datasets import DATASETS, Dataset, load_dataset
from .distributed import Cluster, DistributedError, DistributedSplitEngine, LinkRates, make_engine
from .engine import EvalResult, RoundResult, SplitTrainingEngine, resolve_model
from .partition import PARTITIONS, label_skew, make_partition
from .time_to_accuracy import AccuracyCurve, step_time_s

__all__ = ["DATASETS", "Dataset", "load_dataset", "PARTITIONS", "make_partition", "label_skew",
           "SplitTrainingEngine", "RoundResult", "EvalResult", "resolve_model", "AccuracyCurve", "step_time_s",
           "DistributedSplitEngine", "Cluster", "DistributedError", "LinkRates", "make_engine"]
