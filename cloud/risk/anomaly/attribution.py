"""Which features isolated a day: excess isolation bits along the trees' decision paths.

An isolation forest calls a day anomalous when random splits separate it
from the training days in few steps. Each split on a day's path keeps ``m``
of the ``n`` training samples that reached the node: it isolates the day by
``log2(n / m)`` bits. A split that halves the node gives 1 bit, which is what
a split does for an ordinary day; the excess, ``log2(n / m) - 1``, is
credited to the split's feature. Along one path the credits add up to
``log2(N / leaf size) - depth``: zero or less for a day that needed the usual
number of halvings, large for a day cut off in few splits, so they follow the
forest's score (a short path). A feature's contribution is its credit
averaged over the trees.

A day beyond the training range in a feature goes to the outer side of every
split on it, with the few training days out there, and that feature earns
the bits. Features that were never split on (constant in training) earn
nothing. The numbers are the model's own path structure, not a second model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["isolation_bits"]


def _tree_credit(tree: Any) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Per node: excess bits of entering it from its parent, and the parent's split feature."""
    n = int(tree.node_count)
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    internal = np.nonzero(left >= 0)[0]
    parent = np.full(n, -1, dtype=np.intp)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    counts = np.asarray(tree.n_node_samples, dtype=float)
    child = np.nonzero(parent >= 0)[0]
    bits = np.zeros(n)
    bits[child] = np.log2(counts[parent[child]] / counts[child]) - 1.0
    feature = np.zeros(n, dtype=np.intp)
    feature[child] = np.asarray(tree.feature)[parent[child]]
    return bits, feature


def isolation_bits(forest: Any, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(rows, features)``: excess isolation bits per feature, averaged over the trees.

    ``forest`` is a fitted ``sklearn.ensemble.IsolationForest`` trained with
    ``max_features=1.0`` (every tree sees every column, in order); ``x`` is
    the data as the forest sees it (after the pipeline's transforms).
    """
    x32 = np.asarray(x, dtype=np.float32)
    out = np.zeros(x32.shape, dtype=float)
    for est in forest.estimators_:
        bits, feature = _tree_credit(est.tree_)
        path = est.decision_path(x32).tocoo()
        keep = path.col != 0  # the root is entered by no split
        rows, nodes = path.row[keep], path.col[keep]
        np.add.at(out, (rows, feature[nodes]), bits[nodes])
    return out / max(1, len(forest.estimators_))
