"""Log-likelihood through the probability-flow ODE (Song et al. 2021, App. D.2; Chen et al. 2018):

    log p_{t_min}(x) = log p_{t_max}(x(t_max)) + ∫_{t_min}^{t_max} ∇·v(x(t), t) dt,

with v = f x − ½ g² ∇log p_t, integrated forward in time by classical RK4 on (x, ∫∇·v).
The divergence is exact (d backward passes) or Hutchinson's estimator E[zᵀ (∂v/∂x) z] with
Rademacher probes (Hutchinson 1989; Grathwohl et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from sdebench.solvers.base import StepContext
from sdebench.solvers.noise import GaussianIncrements
from sdebench.solvers.ode import RK4
from sdebench.theory.schedule import Schedule


def _divergence(ctx, x, t, method: str, probes: int, generator):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        drift = ctx.pf_drift(x, t)
        if method == "exact":
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(x.shape[1]):
                (grad,) = torch.autograd.grad(drift[:, i].sum(), x, retain_graph=True)
                div = div + grad[:, i]
        else:
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for _ in range(probes):
                z = torch.randint(0, 2, x.shape, generator=generator, dtype=x.dtype) * 2 - 1
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
    """log p_{t_min}(x) for x of shape (batch, d); ``prior_log_density`` is log p_{t_max}."""
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    if int(steps) != steps or steps < 1 or int(probes) != probes or probes < 1:
        raise ValueError(f"steps and probes must be integers >= 1, got {steps}, {probes}")
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, d), got {tuple(x.shape)}")
    ctx = StepContext(model, schedule, GaussianIncrements(seed), steps)
    generator = torch.Generator().manual_seed(seed)
    ts = torch.linspace(float(schedule.t_min), float(schedule.t_max), steps + 1, dtype=x.dtype)
    integral = torch.zeros(x.shape[0], dtype=x.dtype)
    for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
        dt = t_next - t_cur
        k_x, k_div, stage = [], [], x
        for c, row in zip(RK4.c, RK4.a, strict=True):
            stage = x + sum((dt * a) * k for a, k in zip(row, k_x, strict=False))
            drift, div = _divergence(ctx, stage, t_cur + c * dt, divergence, probes, generator)
            k_x.append(drift)
            k_div.append(div)
        x = x + sum((dt * b) * k for b, k in zip(RK4.b, k_x, strict=True))
        integral = integral + sum((dt * b) * k for b, k in zip(RK4.b, k_div, strict=True))
    return prior_log_density(x) + integral
