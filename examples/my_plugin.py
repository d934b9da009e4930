"""An sdebench plugin in one file: a sampler, a schedule, a problem and a metric.

Use it from the command line (``--plugin`` takes a module name or a .py path)::

    sdebench convergence --plugin examples/my_plugin.py --sde erf_ve \\
        --samplers ralston,heun --steps 8,16,32,64 --metrics w2,second_moment_error

or install it as a plugin of your package (``pyproject.toml``)::

    [project.entry-points."sdebench.plugins"]
    mine = "my_plugin"

Each part is one registration; sdebench records the source of plugin code with every result,
so editing this file invalidates its stored results instead of silently reusing them.
"""

from __future__ import annotations

import math

import sympy
import torch

from sdebench.problems import LOG_DENSITY, PATHS, SAMPLES, register_problem
from sdebench.solvers import register_sampler
from sdebench.solvers.ode import ExplicitRungeKutta
from sdebench.solvers.runge_kutta import Tableau
from sdebench.studies import Measurement, register_metric
from sdebench.theory import Schedule, T, register_schedule

# -- a sampler: one tableau, its order checked against Butcher's conditions ----------------------
RALSTON = Tableau("ralston", c=(0.0, 2 / 3), a=((), (2 / 3,)), b=(1 / 4, 3 / 4), order=2)


@register_sampler("ralston")
class Ralston(ExplicitRungeKutta):
    """Ralston's two-stage method, the second-order RK with the smallest error bound
    (Ralston 1962), on the probability-flow ODE."""

    tableau = RALSTON


# -- a schedule: s(t) and σ(t) in SymPy; f, g, conversions and the solvers' functions follow ------
@register_schedule("erf_ve")
def erf_ve(sigma_max=20, t_min=sympy.Rational(1, 100), t_max=1) -> Schedule:
    """Variance exploding with σ(t) = σ_max · erf(t), s = 1: σ grows linearly, then levels off."""
    return Schedule("erf_ve", s=sympy.Integer(1), sigma=sigma_max * sympy.erf(T),
                    t_min=t_min, t_max=t_max, reference="examples/my_plugin.py")


# -- a problem: data whose truth is known ---------------------------------------------------------
class TwoPointData:
    """Each coordinate of x₀ is ±a with probability ½, independently. Under x_t = s x₀ + sσε the
    denoiser is E[x₀ | x_t] = a tanh(a x_t/(s σ²)) and p_t is a product of two-component
    mixtures, so scores, samples and densities are exact."""

    capabilities = frozenset({SAMPLES, LOG_DENSITY, PATHS})

    def __init__(self, schedule, dim: int, a: torch.Tensor):
        self.schedule, self.dim, self.a = schedule, dim, a

    @property
    def device(self):
        return self.a.device

    @property
    def dtype(self):
        return self.a.dtype

    def to(self, dtype=None, device=None):
        return TwoPointData(self.schedule, self.dim, self.a.to(dtype=dtype, device=device))

    def _coefficients(self, t):
        numeric = self.schedule.numeric
        return numeric.s(t), numeric.sigma(t)

    def denoiser(self, x, t):
        s, sigma = self._coefficients(t)
        return self.a * torch.tanh(self.a * x / (s * sigma**2))

    def sample_marginal(self, t, n, generator=None):
        s, sigma = self._coefficients(t)
        signs = torch.randint(0, 2, (n, self.dim), generator=generator, device=self.device) * 2 - 1
        noise = torch.randn((n, self.dim), generator=generator, dtype=self.dtype, device=self.device)
        return s * (signs * self.a + sigma * noise)

    def log_density(self, x, t):
        s, sigma = self._coefficients(t)
        std = s * sigma
        log_normal = -0.5 * ((x.unsqueeze(-1) - torch.stack([s * self.a, -s * self.a])) / std) ** 2
        per_coordinate = torch.logsumexp(log_normal, -1) - math.log(2) - torch.log(std) \
            - 0.5 * math.log(2 * math.pi)
        return per_coordinate.sum(-1)


@register_problem("two_point")
def two_point(schedule, *, dim: int, seed: int, a: float = 1.0) -> TwoPointData:
    """±a data in every coordinate (``seed`` is not needed: the data law is fixed)."""
    if not a > 0:
        raise ValueError(f"a must be positive, got {a!r}")
    return TwoPointData(schedule, dim, torch.tensor(float(a), dtype=torch.float64))


# -- a metric: any function of the unit's lazily computed runs --------------------------------------
@register_metric("second_moment_error", requires=[SAMPLES], order="order",
                 description="|E‖x‖² of the output − E‖x‖² of exact samples|")
def second_moment_error(run) -> Measurement:
    """A weak error with the smooth test function ‖x‖² (it converges at the weak order): the
    output's mean squared norm against that of an independent set of exact samples, with the
    standard error of the difference of the two means."""
    output = run.batch_run.x.flatten(1).pow(2).sum(1)
    exact = run.exact_samples().flatten(1).pow(2).sum(1)
    stderr = math.sqrt(float(output.var() + exact.var()) / run.batch)
    return Measurement(abs(float(output.mean() - exact.mean())), stderr)
