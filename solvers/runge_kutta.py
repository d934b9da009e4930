"""One explicit Runge–Kutta engine over vector fields, shared by the RK samplers, adaptive
Dormand–Prince and the PF-ODE likelihood (diffrax's "a solver is a tableau").

A :class:`Tableau` carries its order, and the order is checked when the tableau is made: the
weights must satisfy Butcher's order conditions Φ(τ) = 1/γ(τ) for every rooted tree τ with at
most ``order`` nodes (Butcher 2016, §31; Hairer, Nørsett & Wanner I, §II.2), and fail one with
``order + 1`` nodes, so a tableau cannot claim an order it does not have.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdebench.state import axpy

MAX_CHECKED_ORDER = 6
_ORDER_CONDITION_TOLERANCE = 1e-12


@functools.cache
def rooted_trees(nodes: int) -> tuple:
    """All rooted trees with ``nodes`` nodes; a tree is the sorted tuple of its root's subtrees."""
    return ((),) if nodes == 1 else tuple(sorted(set(_forests(nodes - 1))))


@functools.cache
def _forests(nodes: int) -> tuple:
    """All multisets (sorted tuples) of rooted trees with ``nodes`` nodes in total."""
    if nodes == 0:
        return ((),)
    forests = set()
    for size in range(1, nodes + 1):
        for tree in rooted_trees(size):
            for rest in _forests(nodes - size):
                forests.add(tuple(sorted((*rest, tree))))
    return tuple(forests)


def _stage_weights(tree: tuple, a: np.ndarray) -> np.ndarray:
    """Φ_i(τ) = Π over subtrees u of (A Φ(u))_i (a single node gives the vector of ones)."""
    weights = np.ones(a.shape[0])
    for subtree in tree:
        weights = weights * (a @ _stage_weights(subtree, a))
    return weights


def _density(tree: tuple) -> int:
    """γ(τ) = |τ| Π γ(u) over the root's subtrees u."""
    return _size(tree) * math.prod(_density(subtree) for subtree in tree)


def _size(tree: tuple) -> int:
    return 1 + sum(_size(subtree) for subtree in tree)


def achieved_order(a: np.ndarray, b: np.ndarray, max_order: int = MAX_CHECKED_ORDER) -> int:
    """The largest p ≤ ``max_order`` such that weights ``b`` with matrix ``a`` satisfy every order
    condition of trees with at most p nodes."""
    for nodes in range(1, max_order + 1):
        for tree in rooted_trees(nodes):
            if abs(b @ _stage_weights(tree, a) - 1 / _density(tree)) > _ORDER_CONDITION_TOLERANCE:
                return nodes - 1
    return max_order


@dataclass(frozen=True)
class Tableau:
    """Explicit Butcher tableau: stages at t + c_i Δ, matrix a (strictly lower triangular rows),
    weights b of order ``order``; optional ``error_weights`` b − b̂ of an embedded pair."""

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    error_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        stages = len(self.b)
        if len(self.c) != stages or len(self.a) != stages or any(
                len(row) > i for i, row in enumerate(self.a)):
            raise ValueError(f"tableau {self.name!r}: c, a, b need one entry per stage and an "
                             "explicit (strictly lower triangular) a")
        for i, (c_i, row) in enumerate(zip(self.c, self.a, strict=True)):
            if abs(sum(row) - c_i) > _ORDER_CONDITION_TOLERANCE:
                raise ValueError(f"tableau {self.name!r}: row {i} of a sums to {sum(row)}, c = {c_i}")
        achieved = achieved_order(self.matrix, np.asarray(self.b, float))
        if achieved != self.order:
            raise ValueError(f"tableau {self.name!r} declares order {self.order} but its weights "
                             f"satisfy the order conditions up to order {achieved}")
        if self.error_weights is not None and len(self.error_weights) != stages:
            raise ValueError(f"tableau {self.name!r}: one error weight per stage")

    @property
    def matrix(self) -> np.ndarray:
        stages = len(self.b)
        a = np.zeros((stages, stages))
        for i, row in enumerate(self.a):
            a[i, :len(row)] = row
        return a


def stage_slopes(field: Callable, x, t, dt, tableau: Tableau, t_end=None) -> list:
    """k_i = field(x + Δ Σ_j a_ij k_j, t + c_i Δ). The stage time is ``t`` itself where c_i = 0
    and ``t_end`` (= t + Δ, when given) where c_i = 1: the grid's own time tensors, whose
    coefficients a field may read from a table (:meth:`StepContext.at`)."""
    slopes = []
    for c_i, row in zip(tableau.c, tableau.a, strict=True):
        stage = x
        for a_ij, k_j in zip(row, slopes, strict=False):
            if a_ij:
                stage = axpy(stage, dt * a_ij, k_j)
        stage_time = t if c_i == 0 else t_end if c_i == 1 and t_end is not None else t + c_i * dt
        slopes.append(field(stage, stage_time))
    return slopes


def combine(x, dt, weights, slopes):
    """x + Δ Σ_i w_i k_i (zero weights skipped)."""
    for w_i, k_i in zip(weights, slopes, strict=True):
        if w_i:
            x = axpy(x, dt * w_i, k_i)
    return x


def rk_step(field: Callable, x, t, dt, tableau: Tableau, t_end=None):
    """One step x' = x + Δ Σ b_i k_i (Butcher 2016, §23); ``t_end`` as in :func:`stage_slopes`."""
    return combine(x, dt, tableau.b, stage_slopes(field, x, t, dt, tableau, t_end))


EULER = Tableau("euler", c=(0.0,), a=((),), b=(1.0,), order=1)
HEUN = Tableau("heun", c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2)
RK4 = Tableau(
    "rk4",
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
)
DORMAND_PRINCE = Tableau(
    "dormand_prince",
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    order=5,
    # b − b̂ (fifth minus embedded fourth order), Dormand & Prince 1980
    error_weights=(71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40),
)
