"""The problem catalogue: name → ``factory(schedule, *, dim, seed, **params)`` returning a
problem (:mod:`sdebench.problems.protocol`) in float64 on the CPU; studies move it to their
dtype and device. Extend it with ``@register_problem("name")``. A factory may carry
``study_defaults(**parameters) -> dict``: the ``steps``, ``dim`` and ``batch`` a study uses when
none is given (an image problem's size follows from its resolution).
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.checkerboard import CheckerboardProblem
from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.mixture import GaussianMixtureProblem
from sdebench.problems.protocol import check_problem
from sdebench.problems.spectrum import lowrank_problem, spectrum_problem
from sdebench.registry import Registry, Spec, check_number, parse_spec
from sdebench.seeding import generator
from sdebench.theory.schedule import Schedule

PROBLEMS = Registry("problem")
register_problem = PROBLEMS.register


def _require_dim(name: str, dim: int, allowed) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in allowed:
        raise ValueError(f"problem {name!r} needs dim in {allowed}, got {dim!r}")


@register_problem("gaussian")
def gaussian(schedule: Schedule, *, dim: int, seed: int, condition: float = 100.0) -> GaussianProblem:
    """N(μ, diag λ) in eigen-coordinates: μ ~ N(0, I), λ log-uniform in [1/√cond, √cond]
    (torch's stream ``seed``). The exact output law of every sampler is available."""
    _require_dim("gaussian", dim, range(1, 10**7))
    check_number("condition", condition, low=1)
    return GaussianProblem.random(schedule, dim, seed=seed, condition=condition)


@register_problem("gaussian_rotated")
def gaussian_rotated(schedule: Schedule, *, dim: int, seed: int,
                     covariance: str = "full") -> GaussianProblem:
    """N(m, U diag(λ) Uᵀ), log λ ~ U(−2, 2), m ~ N(0, I); U a random rotation (``full``: the
    denoiser costs two d×d products, a network's role in experiments/speed.py) or I
    (``diagonal``: cheap and memory-bound, so a sampler's own overhead shows)."""
    _require_dim("gaussian_rotated", dim, range(1, 10**5))
    if covariance not in ("full", "diagonal"):
        raise ValueError(f"covariance must be 'full' or 'diagonal', got {covariance!r}")
    stream = generator(seed, "gaussian_rotated")
    gaussian_matrix = torch.randn(dim, dim, generator=stream, dtype=torch.float64)
    rotation = torch.linalg.qr(gaussian_matrix)[0] if covariance == "full" else None
    eigenvalues = torch.exp(torch.rand(dim, generator=stream, dtype=torch.float64) * 4 - 2)
    mean = torch.randn(dim, generator=stream, dtype=torch.float64)
    return GaussianProblem(schedule, mean, eigenvalues, rotation)


@register_problem("gmm")
def gaussian_mixture(schedule: Schedule, *, dim: int, seed: int, components: int = 8,
                     radius: float = 2.0, std: float = 0.2) -> GaussianMixtureProblem:
    """In 2-D the ring benchmark: ``components`` (an integer >= 1) equal-weight N(m_k, std² I),
    std > 0, on a circle of finite ``radius``; in other dimensions 4 equal-weight components
    with means ~ N(0, 4 I) (stream ``seed``) and variance 0.1 (the options are checked there
    too: a bad value is refused, not ignored)."""
    _require_dim("gmm", dim, range(1, 10**5))
    components = check_number("components", components, low=1, integer=True)
    check_number("radius", radius)
    check_number("std", std, low=0, low_open=True)
    if dim == 2:
        return GaussianMixtureProblem.ring(schedule, components, radius, std)
    means = 2 * torch.randn(4, dim, generator=generator(seed, "gmm"), dtype=torch.float64)
    return GaussianMixtureProblem(schedule, torch.ones(4, dtype=torch.float64), means,
                                  torch.full_like(means, 0.1))


@register_problem("bimodal_1d")
def bimodal_1d(schedule: Schedule, *, dim: int = 1, seed: int = 0, separation: float = 1.5,
               variance: float = 0.05) -> GaussianMixtureProblem:
    """½N(−a, v) + ½N(a, v) in one dimension: the picture of the notes (paths from noise to two
    modes)."""
    _require_dim("bimodal_1d", dim, (1,))
    if not (math.isfinite(separation) and variance > 0):
        raise ValueError(f"need a finite separation and variance > 0, got {separation}, {variance}")
    return GaussianMixtureProblem(
        schedule, torch.ones(2, dtype=torch.float64),
        torch.tensor([[-separation], [separation]], dtype=torch.float64),
        torch.full((2, 1), variance, dtype=torch.float64),
    )


@register_problem("checkerboard")
def checkerboard(schedule: Schedule, *, dim: int = 2, seed: int = 0, cells: int = 4,
                 half_width: float = 2.0) -> CheckerboardProblem:
    """Uniform on the black cells of a ``cells`` × ``cells`` board over [−half_width,
    half_width]² (2-D only): sharp edges, exact score (:mod:`sdebench.problems.checkerboard`)."""
    _require_dim("checkerboard", dim, (2,))
    return CheckerboardProblem(schedule, cells, half_width)


register_problem("spectrum", spectrum_problem)
register_problem("lowrank", lowrank_problem)


def get_problem(spec: str | Spec, schedule: Schedule, *, dim: int, seed: int):
    """The problem a spec names, on ``schedule``; user problems are checked against the protocol."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    problem = PROBLEMS.create(spec, schedule=schedule, dim=dim, seed=seed)
    check_problem(problem, f"problem {spec.target!r}")
    return problem
