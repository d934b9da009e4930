"""Hypothesis strategies: random valid schedules and Gaussian data."""

from __future__ import annotations

import sympy
import torch
from hypothesis import strategies as st

from sdebench.problems.gaussian import GaussianProblem
from sdebench.theory import Schedule, T, edm, subvp, ve_geometric, vp_linear


def _ratio(lo, hi):
    return st.floats(lo, hi, allow_nan=False).map(lambda v: sympy.Rational(repr(round(v, 3))))


@st.composite
def smooth_schedules(draw) -> Schedule:
    """s(t) = exp(−a t − b t²), σ(t) = σ₀ + c t + d t³ on [0.01, 1]: s > 0 and σ̇ > 0 by
    construction (a, b, d ≥ 0, c > 0, σ₀ > 0)."""
    a, b = draw(_ratio(0, 3)), draw(_ratio(0, 3))
    sigma0, c, d = draw(_ratio(0.01, 0.2)), draw(_ratio(0.5, 5)), draw(_ratio(0, 20))
    return Schedule("smooth", sympy.exp(-a * T - b * T**2), sigma0 + c * T + d * T**3,
                    sympy.Rational(1, 100), 1)


def schedules():
    """Random parameters for each catalogue family, plus random smooth (s, σ)."""
    return st.one_of(
        st.builds(vp_linear, _ratio(0.05, 1), _ratio(5, 30)),
        st.builds(subvp, _ratio(0.05, 1), _ratio(5, 30)),
        st.builds(ve_geometric, _ratio(0.005, 0.05), _ratio(10, 100)),
        st.builds(edm, _ratio(0.001, 0.01), _ratio(10, 100)),
        smooth_schedules(),
    )


@st.composite
def gaussian_data(draw, max_dim: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, eigenvalues) of Gaussian data in eigen-coordinates, float64."""
    dim = draw(st.integers(1, max_dim))
    floats = st.floats(-2, 2, allow_nan=False)
    mean = torch.tensor(draw(st.lists(floats, min_size=dim, max_size=dim)), dtype=torch.float64)
    spectrum = st.floats(0.05, 5, allow_nan=False)
    eigenvalues = torch.tensor(draw(st.lists(spectrum, min_size=dim, max_size=dim)),
                               dtype=torch.float64)
    return mean, eigenvalues


@st.composite
def gaussian_problems(draw, schedule: Schedule, max_dim: int = 5) -> GaussianProblem:
    return GaussianProblem(schedule, *draw(gaussian_data(max_dim)))
