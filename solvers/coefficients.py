"""The schedule's coefficients on the time grid, evaluated once per run (issue 28).

A step needs s, sσ, σ, λ = −log σ, f, g², g and the PF-ODE and conversion coefficients at
t_cur and t_next. Evaluated at a 0-d time, each is a chain of small torch operations (a kernel
launch each on an accelerator, 5–14 µs each on a CPU), which dominates a step when the state is
small. :class:`GridCoefficients` evaluates each function once over the whole grid (one
vectorised call, float64, on the grid's device) when a step first asks for it, and
:meth:`GridCoefficients.at` hands a step the row of a grid time: Python floats when the grid is
on the host (the scalar arithmetic a step does with them then runs no torch operation at all),
0-d views of the table on an accelerator (no host read). Times off the grid (DPM-Solver's
intermediate times, Runge–Kutta stages, rk45's sub-steps, EDM's churned times) are evaluated
at the time itself, as before.

Values equal the 0-d evaluations to round-off: the same lambdified functions, elementwise, in
float64 (``tests/test_grid_coefficients.py``). At a pure-noise end (s = 0, σ = ∞) the table
holds what the functions give there: s, sσ and the PF-ODE coefficients finite (their limits,
:meth:`~sdebench.theory.schedule.NumericSchedule.pf_coefficients`), σ, λ, f and g² infinite,
as Python floats obey IEEE arithmetic like 0-d tensors (inf − inf is nan, 1/inf is 0); a
division by a float zero would raise, and no step divides by a coefficient that can be zero.
"""

from __future__ import annotations

import math

import torch

from sdebench.theory.schedule import NumericSchedule

_FUNCTIONS = ("s", "sigma", "kernel_std", "f", "g2", "g", "half_log_snr")
"""Functions of t read one at a time."""

_PAIRS = {
    "pf_coefficients": lambda schedule: schedule.pf_coefficients,
    "score_coefficients": lambda schedule: _pair(schedule.conversion_coefficients("x0", "score")),
    "eps_coefficients": lambda schedule: _pair(schedule.conversion_coefficients("x0", "eps")),
}
"""Coefficient pairs (c_x, c_D) of an update c_x x + c_D x̂₀, read together."""


def _pair(functions):
    c_x, c_denoised = functions
    return lambda t: (c_x(t), c_denoised(t))


def sqrt(value):
    """√value of a coefficient: a Python float (NaN below 0, as torch gives) or a tensor."""
    if isinstance(value, torch.Tensor):
        return torch.sqrt(value)
    return math.sqrt(value) if value >= 0 else math.nan


def expm1(value):
    """eᵛ − 1 of a coefficient: a Python float (∞ beyond float64's range, as torch gives) or a
    tensor."""
    if isinstance(value, torch.Tensor):
        return torch.expm1(value)
    try:
        return math.expm1(value)
    except OverflowError:
        return math.inf


class GridCoefficients:
    """Coefficient columns over a time grid ``ts``, each evaluated on first use.

    ``at(t, index)`` gives the :class:`Coefficients` row of ``ts[index]``; ``at(t)`` one
    evaluated at ``t`` (a time off the grid, or any time when ``ts`` is None)."""

    def __init__(self, schedule: NumericSchedule, ts: torch.Tensor | None):
        self.schedule = schedule
        self.ts = ts  # None: no grid, every time is evaluated
        self.on_host = ts is None or ts.device.type == "cpu"
        self._times = None if ts is None else ts.to(torch.float64)
        self._columns: dict = {}

    def column(self, name: str):
        """``name`` at every grid time: a list of floats on the host, a tensor elsewhere (a pair
        name gives a pair of columns)."""
        if name not in self._columns:  # the times themselves keep the grid's dtype
            values = self.ts if name == "t" else self.evaluate(name, self._times)
            self._columns[name] = tuple(self._host(v) for v in values) \
                if isinstance(values, tuple) else self._host(values)
        return self._columns[name]

    def _host(self, values: torch.Tensor):
        return values.tolist() if self.on_host else values

    def evaluate(self, name: str, t: torch.Tensor):
        """``name`` evaluated at ``t`` (any shape, its dtype and device)."""
        if name == "t":
            return t
        if name in _PAIRS:
            return _PAIRS[name](self.schedule)(t)
        if name in _FUNCTIONS:
            return getattr(self.schedule, name)(t)
        raise AttributeError(f"no schedule coefficient {name!r}; known: "
                             f"{('t', *_FUNCTIONS, *_PAIRS)}")

    def at(self, t, index: int | None = None) -> Coefficients:
        return Coefficients(self, t, index)


class Coefficients:
    """The coefficients at one time: ``t``, ``s``, ``sigma``, ``kernel_std`` (sσ), ``f``,
    ``g2``, ``g``, ``half_log_snr`` (λ = −log σ), and the pairs ``pf_coefficients``,
    ``score_coefficients``, ``eps_coefficients``. Read from the grid's table when the time is
    a grid time, else evaluated at it."""

    def __init__(self, table: GridCoefficients, t, index: int | None):
        self._table, self._t, self._index = table, t, index

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._index is None:
            return self._table.evaluate(name, self._t)
        column = self._table.column(name)
        if isinstance(column, tuple):
            return tuple(c[self._index] for c in column)
        return column[self._index]
