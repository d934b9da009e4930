"""Runge–Kutta solvers for the probability-flow ODE dx/dt = f x − ½ g² ∇log p_t (Song et al. 2021,
eq. 13), each a tableau of :mod:`sdebench.solvers.runge_kutta` (whose order it declares), and
the adaptive Dormand–Prince pair RK5(4) (Dormand & Prince 1980; scipy's RK45, used by Song et
al. 2021) that controls its own sub-steps inside each grid interval.
"""

from __future__ import annotations

import math

import torch

from sdebench.registry import check_number
from sdebench.solvers.context import NonFiniteError
from sdebench.solvers.runge_kutta import (
    DORMAND_PRINCE,
    EULER,
    HEUN,
    RK4,
    Tableau,
    combine,
    rk_step,
    stage_slopes,
)
from sdebench.solvers.solver import Solver
from sdebench.state import rms


class ExplicitRungeKutta(Solver, abstract=True):
    """x' = x + Δ Σ b_i k_i, k_i = v(x + Δ Σ_j a_ij k_j, t + c_i Δ), v the PF-ODE drift.
    Subclasses set ``tableau``; ``order`` and ``nfe_per_step`` follow from it."""

    tableau: Tableau
    stochastic = False
    strong_order = None
    handles_infinite_sigma = True  # the drift's coefficients are finite there (their limit)

    def __init_subclass__(cls, **kwargs):
        if "tableau" in cls.__dict__:
            cls.order = cls.tableau.order
            cls.nfe_per_step = len(cls.tableau.b)
        super().__init_subclass__(**kwargs)

    def step(self, ctx, x, t_cur, t_next, state):
        return _pf_ode_step(ctx, x, t_cur, t_next, self.tableau), state


def _pf_ode_step(ctx, x, t_cur, t_next, tableau):
    """One step of ``tableau`` on the PF-ODE, Δ = t_next − t_cur from the grid's table."""
    dt = ctx.at(t_next).t - ctx.at(t_cur).t
    return rk_step(ctx.pf_drift, x, t_cur, dt, tableau, t_end=t_next)


class Euler(ExplicitRungeKutta):
    """Euler's method on the PF-ODE; its one evaluation is at t_cur, so it may end at σ = 0."""

    tableau = EULER
    handles_zero_sigma = True


class Heun(ExplicitRungeKutta):
    """Heun's method (EDM's deterministic sampler, Karras et al. 2022, Alg. 1): an Euler step
    where σ(t_next) = 0, since the drift is 0/0 there (Alg. 1, line 6)."""

    tableau = HEUN
    handles_zero_sigma = True

    def step(self, ctx, x, t_cur, t_next, state):
        tableau = EULER if ctx.to_zero_sigma else self.tableau
        return _pf_ode_step(ctx, x, t_cur, t_next, tableau), state


class RungeKutta4(ExplicitRungeKutta):
    """The classical fourth-order Runge–Kutta method."""

    tableau = RK4


class DormandPrince45(Solver):
    """Adaptive RK5(4) with error control ‖err‖ ≤ atol + rtol ‖x‖ (rms norms over batch and
    dimensions; the exact-law object uses expectations). Step-size rule of Hairer, Nørsett &
    Wanner I, §II.4 (safety 0.9, factor in [0.2, 10]); no FSAL reuse, 7 evaluations a try."""

    order = None
    order_note = "adaptive: accuracy is set by rtol/atol, not by the grid"
    strong_order = None
    stochastic = False
    nfe_per_step = float("nan")
    handles_infinite_sigma = True
    tableau = DORMAND_PRINCE

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-5):
        self.rtol = check_number("rtol", rtol, low=0, low_open=True)
        self.atol = check_number("atol", atol, low=0, low_open=True)

    def step(self, ctx, x, t_cur, t_next, state):
        """Sub-steps from t_cur to t_next; ``state`` carries the last accepted sub-step size."""
        t, span = t_cur, t_next - t_cur
        dt = span / 16 if state is None else torch.sign(span) * min(abs(state), abs(span))
        while (t_next - t) * torch.sign(span) > 1e-14 * abs(span):
            if abs(dt) > abs(t_next - t):
                dt = t_next - t
            if t + dt == t:  # the error control asks for a step below t's resolution
                raise FloatingPointError(
                    f"rk45: step size {float(dt):.3g} underflows at t = {float(t):.6g}: the error "
                    f"control (rtol={self.rtol:g}, atol={self.atol:g}) cannot be met here")
            slopes = stage_slopes(ctx.pf_drift, x, t, dt, self.tableau)
            x_new = combine(x, dt, self.tableau.b, slopes)
            error = combine(0 * x, dt, self.tableau.error_weights, slopes)
            tolerance = self.atol + self.rtol * torch.maximum(rms(x), rms(x_new))
            ratio = float(rms(error) / tolerance)
            if not math.isfinite(ratio):  # a NaN/Inf stage would shrink dt forever
                raise NonFiniteError(f"rk45: non-finite error estimate at t = {float(t):.6g} "
                                     f"(step size {float(dt):.3g}): the model or state has NaN/Inf")
            if ratio <= 1.0:
                x, t = x_new, t + dt
            factor = 10.0 if ratio == 0 else min(10.0, max(0.2, 0.9 * ratio ** (-1 / 5)))
            dt = dt * factor
        return x, dt
