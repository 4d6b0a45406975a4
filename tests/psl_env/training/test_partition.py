"""IID and Dirichlet partitions: deterministic, disjoint, and with the requested label skew."""

from __future__ import annotations

import numpy as np
import pytest

from psl_env.training.partition import (client_share_variance, dirichlet_share_variance, label_skew,
                                        make_partition)

LABELS = np.repeat(np.arange(10), 200)  # 2000 samples, 10 balanced classes


def _check_is_partition(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n


@pytest.mark.parametrize("kind", ["iid", "dirichlet"])
def test_partition_is_deterministic_and_disjoint(kind):
    a = make_partition(LABELS, 7, kind, alpha=0.3, seed=5)
    b = make_partition(LABELS, 7, kind, alpha=0.3, seed=5)
    c = make_partition(LABELS, 7, kind, alpha=0.3, seed=6)
    _check_is_partition(a, len(LABELS))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert min(len(p) for p in a) >= 1


def test_iid_sizes_are_balanced_and_unskewed():
    parts = make_partition(LABELS, 8, "iid", seed=0)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert label_skew(LABELS, parts) < 0.1


def test_smaller_alpha_means_more_skew():
    alphas = [0.05, 0.3, 2.0, 100.0]
    skew = [np.mean([label_skew(LABELS, make_partition(LABELS, 10, "dirichlet", a, seed=s)) for s in range(10)])
            for a in alphas]
    assert all(x > y for x, y in zip(skew, skew[1:])), skew
    iid = np.mean([label_skew(LABELS, make_partition(LABELS, 10, "iid", seed=s)) for s in range(10)])
    assert skew[-1] < 2 * iid + 0.02
    assert skew[0] > 0.6  # nearly one class per client (max 0.9 for 10 classes)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 2.0])
def test_dirichlet_share_variance_matches_the_requested_alpha(alpha):
    # A client's share of a class is Beta distributed with variance (1/N)(1-1/N)/(N alpha + 1).
    n = 10
    measured = np.mean([client_share_variance(LABELS, make_partition(LABELS, n, "dirichlet", alpha, seed=s,
                                                                     min_size=0)) for s in range(40)])
    target = dirichlet_share_variance(n, alpha)
    assert abs(measured / target - 1.0) < 0.15, (measured, target)


def test_min_size_is_enforced_even_at_tiny_alpha():
    parts = make_partition(LABELS, 20, "dirichlet", alpha=0.01, seed=0, min_size=5)
    _check_is_partition(parts, len(LABELS))
    assert min(len(p) for p in parts) >= 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="allowed"):
        make_partition(LABELS, 3, "shards")
    with pytest.raises(ValueError):
        make_partition(LABELS[:2], 3, "iid")
