"""Runge–Kutta solvers for the probability-flow ODE dx/dt = f x − ½ g² ∇log p_t.

One explicit tableau machinery (Butcher 2016, §23) serves Euler, Heun, midpoint and RK4; the
adaptive Dormand–Prince pair RK5(4) (Dormand & Prince 1980; scipy's RK45, used by Song et al.
2021) controls its own sub-steps inside each grid interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sdebench.solvers.base import Solver, axpy, rms


@dataclass(frozen=True)
class Tableau:
    """Explicit Butcher tableau: stages at t + c_i Δ, weights a (lower triangular) and b."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]


EULER = Tableau(c=(0.0,), a=((),), b=(1.0,))
HEUN = Tableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5))
MIDPOINT = Tableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))
RK4 = Tableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
)


def _stages(ctx, x, t, dt, tableau: Tableau) -> list:
    slopes = []
    for c, row in zip(tableau.c, tableau.a, strict=True):
        stage = x
        for a_ij, k in zip(row, slopes, strict=False):
            if a_ij:
                stage = axpy(stage, dt * a_ij, k)
        slopes.append(ctx.pf_drift(stage, t + c * dt))
    return slopes


class ExplicitRungeKutta(Solver):
    """x' = x + Δ Σ b_i k_i with k_i = v(x + Δ Σ a_ij k_j, t + c_i Δ), v the PF-ODE drift.

    ``euler_at_zero_sigma``: EDM's Heun takes an Euler step when σ(t_next) = 0, where the drift
    is 0/0 (Karras et al. 2022, Alg. 1, line 6).
    """

    stochastic = False

    def __init__(self, name: str, tableau: Tableau, order: int, euler_at_zero_sigma=False):
        self.name, self.tableau, self.order = name, tableau, order
        self.nfe_per_step = len(tableau.b)
        self.euler_at_zero_sigma = euler_at_zero_sigma

    def step(self, ctx, x, t_cur, t_next, state):
        dt = t_next - t_cur
        tableau = self.tableau
        if self.euler_at_zero_sigma and float(ctx.schedule.sigma(t_next)) == 0.0:
            tableau = EULER
        slopes = _stages(ctx, x, t_cur, dt, tableau)
        for b_i, k in zip(tableau.b, slopes, strict=True):
            if b_i:
                x = axpy(x, dt * b_i, k)
        return x, state


DORMAND_PRINCE = Tableau(
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
)
_DP_ERROR = (
    71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40,
)  # b − b̂ (fifth minus embedded fourth order)


class DormandPrince45(Solver):
    """Adaptive RK5(4) with error control ‖err‖ ≤ atol + rtol ‖x‖ (rms norms over batch and
    dimensions; the exact-law object uses expectations). Step-size rule of Hairer, Nørsett &
    Wanner I, §II.4 (safety 0.9, factor in [0.2, 10]); no FSAL reuse, 7 evaluations a try."""

    stochastic = False
    order = None
    order_note = "adaptive: accuracy is set by rtol/atol, not by the grid"

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-5):
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
        self.name = "rk45"
        self.rtol, self.atol = rtol, atol
        self.nfe_per_step = float("nan")

    def step(self, ctx, x, t_cur, t_next, state):
        t, t_end = t_cur, t_next
        span = t_end - t_cur
        dt = span / 16 if state is None else torch.sign(span) * min(abs(state), abs(span))
        while (t_end - t) * torch.sign(span) > 1e-14 * abs(span):
            if abs(dt) > abs(t_end - t):
                dt = t_end - t
            slopes = _stages(ctx, x, t, dt, DORMAND_PRINCE)
            update = sum((dt * b) * k for b, k in zip(DORMAND_PRINCE.b, slopes, strict=True) if b)
            error = sum((dt * e) * k for e, k in zip(_DP_ERROR, slopes, strict=True) if e)
            x_new = x + update
            tolerance = self.atol + self.rtol * torch.maximum(rms(x), rms(x_new))
            ratio = float(rms(error) / tolerance)
            if ratio <= 1.0:
                x, t = x_new, t + dt
            factor = 10.0 if ratio == 0 else min(10.0, max(0.2, 0.9 * ratio ** (-1 / 5)))
            dt = dt * factor
        return x, dt
