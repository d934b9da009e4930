"""Log-likelihood through the probability-flow ODE (Song et al. 2021, App. D.2; Chen et al. 2018):

    log p_{t_min}(x) = log p_{t_max}(x(t_max)) + ∫_{t_min}^{t_max} ∇·v(x(t), t) dt,

with v = f x − ½ g² ∇log p_t, integrated forward in time by classical RK4 on (x, ∫∇·v).
The divergence is exact (d backward passes) or Hutchinson's estimator E[zᵀ (∂v/∂x) z] with
Rademacher probes (Hutchinson 1989; Grathwohl et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sdebench.seeding import generator as seeded_generator
from sdebench.solvers.context import FiniteMonitor, StepContext
from sdebench.solvers.runge_kutta import RK4, rk_step
from sdebench.theory.schedule import Schedule


def _divergence(ctx, x, t, method: str, probes: int, generator):
    """(v(x, t), ∇·v(x, t)) with v the PF-ODE drift, by d backward passes or Hutchinson."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        drift = ctx.pf_drift(x, t)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if method == "exact":
            for i in range(x.shape[1]):
                (grad,) = torch.autograd.grad(drift[:, i].sum(), x, retain_graph=True)
                div = div + grad[:, i]
        else:
            for _ in range(probes):
                z = torch.randint(0, 2, x.shape, generator=generator, dtype=x.dtype,
                                  device=x.device) * 2 - 1
                (vjp,) = torch.autograd.grad((drift * z).sum(), x, retain_graph=True)
                div = div + (vjp * z).sum(1) / probes
    return drift.detach(), div.detach()


def pf_ode_log_likelihood(
    model: Callable,
    schedule: Schedule,
    x: torch.Tensor,
    prior_log_density: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 200,
    divergence: str = "exact",
    probes: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """log p_{t_min}(x) for x of shape (batch, d); ``prior_log_density`` is log p_{t_max}.
    The augmented state [x, ∫∇·v] is integrated forward by the RK engine (RK4), on x's device."""
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    if int(steps) != steps or steps < 1 or int(probes) != probes or probes < 1:
        raise ValueError(f"steps and probes must be integers >= 1, got {steps}, {probes}")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, d), got {tuple(x.shape)}")
    dim = x.shape[1]
    ts = torch.linspace(float(schedule.t_min), float(schedule.t_max), steps + 1, dtype=x.dtype,
                        device=x.device)
    ctx = StepContext(model, schedule, None, steps, FiniteMonitor("step", ts), ts=ts)
    generator = seeded_generator(seed, "hutchinson", device=x.device)

    def augmented_field(z, t):
        drift, div = _divergence(ctx, z[:, :dim], t, divergence, probes, generator)
        return torch.cat([drift, div[:, None]], dim=1)

    z = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
    for i in range(steps):
        t_cur, t_next = ctx.start_step(i)
        z = rk_step(augmented_field, z, t_cur, ctx.at(t_next).t - ctx.at(t_cur).t, RK4,
                    t_end=t_next)
    return prior_log_density(z[:, :dim]) + z[:, dim]
