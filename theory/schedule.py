"""Concrete diffusion schedules: a validated kernel on a time range, and its numeric twin."""

from __future__ import annotations

import math
from functools import cached_property

import mpmath
import sympy
import torch

from sdebench.theory.kernel import Kernel, T
from sdebench.theory.numeric import lambdify
from sdebench.theory.parameterisation import conversion as derive_conversion

SIGMA = sympy.Symbol("sigma", positive=True)
"""The noise-level variable of inverse schedules t(σ)."""

_VALIDATION_POINTS = 513


def exact_number(value, name: str = "value") -> sympy.Expr:
    """A SymPy number: floats become the rational with the same decimal digits (repr), so 0.1
    is 1/10 and nothing is guessed (``nsimplify`` may return algebraic look-alikes).

    Raises :class:`ScheduleError` naming ``name`` unless ``value`` is a finite real number (or a
    SymPy expression that evaluates to one)."""
    if isinstance(value, bool) or not isinstance(value, int | float | sympy.Basic):
        raise ScheduleError(f"{name} must be a finite real number, got {value!r}")
    number = sympy.Rational(repr(value)) if isinstance(value, float) and math.isfinite(value) \
        else sympy.sympify(value)
    if not (number.is_number and number.is_real and number.is_finite):
        raise ScheduleError(f"{name} must be a finite real number, got {value!r}")
    return number


class ScheduleError(ValueError):
    """A schedule violates s > 0, σ ≥ 0, σ̇ > 0 or has an empty time range."""


class Schedule(Kernel):
    """A kernel ``x_t = s(t) x_0 + s(t) σ(t) ε`` on ``t ∈ [t_min, t_max]``.

    Parameters
    ----------
    name: catalogue name.
    s, sigma: SymPy expressions in :data:`theory.kernel.T`.
    t_min, t_max: the time range; samplers integrate from ``t_max`` down to ``t_min``.
    sigma_inverse: optional closed form of t(σ) in :data:`SIGMA`; it is checked at a few points
        here and proven exactly in ``theory/tests``. Without it, numeric inversion is by bisection.
    reference: the paper (and equation) the schedule comes from.

    Raises
    ------
    ScheduleError
        if t_min ≥ t_max, an expression has free symbols other than t, or at any of 513 points of
        the range s ≤ 0, σ < 0, σ̇ ≤ 0 or a value is not finite (checked with mpmath at 30 digits).
    """

    def __init__(
        self,
        name: str,
        s: sympy.Expr,
        sigma: sympy.Expr,
        t_min: sympy.Expr | float,
        t_max: sympy.Expr | float,
        sigma_inverse: sympy.Expr | None = None,
        reference: str = "",
    ):
        super().__init__(s, sigma, name=name)
        self.t_min = exact_number(t_min, "t_min")
        self.t_max = exact_number(t_max, "t_max")
        self.sigma_inverse = None if sigma_inverse is None else sympy.sympify(sigma_inverse)
        self.reference = reference
        self._validate()

    def _validate(self) -> None:
        where = f"schedule {self.name!r}"
        for label, expr in (("s", self.s), ("sigma", self.sigma)):
            extra = expr.free_symbols - {T}
            if extra:
                raise ScheduleError(f"{where}: {label}(t) = {expr} has free symbols {extra}")
        if not (self.t_min.is_finite and self.t_max.is_finite and self.t_min < self.t_max):
            raise ScheduleError(
                f"{where}: empty time range [t_min, t_max] = [{self.t_min}, {self.t_max}];"
                " expected finite t_min < t_max"
            )
        checks = (
            ("s(t) > 0", self.s, lambda v: v > 0),
            ("sigma(t) >= 0", self.sigma, lambda v: v >= 0),
            ("d sigma/dt > 0 (sigma increasing)", self.dsigma, lambda v: v > 0),
        )
        with mpmath.workdps(30):
            functions = [(label, sympy.lambdify(T, e, "mpmath"), ok) for label, e, ok in checks]
            lo, hi = mpmath.mpf(self.t_min), mpmath.mpf(self.t_max)
            for k in range(_VALIDATION_POINTS):
                t = lo + (hi - lo) * k / (_VALIDATION_POINTS - 1)
                for label, fn, ok in functions:
                    try:
                        value = fn(t)
                    except (ZeroDivisionError, ValueError, TypeError) as error:
                        raise ScheduleError(
                            f"{where}: expected {label} on [{self.t_min}, {self.t_max}], but it "
                            f"cannot be evaluated at t = {mpmath.nstr(t, 8)} "
                            f"({type(error).__name__}: {str(error) or 'division by zero'})"
                        ) from None
                    if not (mpmath.isfinite(value) and mpmath.im(value) == 0 and ok(value)):
                        raise ScheduleError(
                            f"{where}: expected {label} on [{self.t_min}, {self.t_max}],"
                            f" got {mpmath.nstr(value, 6)} at t = {mpmath.nstr(t, 8)}"
                        )
        if self.sigma_inverse is not None:
            self._check_inverse()
        self._check_numeric_twin()

    def _check_inverse(self) -> None:
        """sigma_inverse(sigma(t)) = t to 20 digits at 7 interior points; a NaN (or complex)
        round trip is refused: the comparison is written so that NaN fails it."""
        roundtrip = sympy.lambdify(T, self.sigma_inverse.subs(SIGMA, self.sigma), "mpmath")
        with mpmath.workdps(30):
            for k in range(1, 8):
                t = mpmath.mpf(self.t_min) + (self.t_max - self.t_min) * mpmath.mpf(k) / 8
                error = abs(roundtrip(t) - t)
                if not error <= mpmath.mpf(10) ** -20 * (1 + abs(t)):
                    raise ScheduleError(
                        f"schedule {self.name!r}: sigma_inverse(sigma(t)) != t at t = {t}"
                    )

    def _check_numeric_twin(self) -> None:
        """The torch functions the solvers use must equal the SymPy expressions: evaluate both
        (float64 against 30-digit mpmath) at 9 points of the range, relative tolerance 1e-9
        (round-off of a few dozen operations, amplified by at most ~10⁵ by cancellation)."""
        try:
            numeric = self.numeric
        except Exception as error:
            raise ScheduleError(f"schedule {self.name!r} cannot be evaluated with torch "
                                f"({type(error).__name__}: {error})") from None
        with mpmath.workdps(30):
            for attr in _NUMERIC_FUNCTIONS:
                exact = sympy.lambdify(T, getattr(self, attr), "mpmath")
                for k in range(9):
                    t = mpmath.mpf(self.t_min) + (self.t_max - self.t_min) * mpmath.mpf(k) / 8
                    try:
                        value = float(getattr(numeric, attr)(torch.tensor(float(t), dtype=torch.float64)))
                    except Exception as error:
                        raise ScheduleError(
                            f"schedule {self.name!r}: {attr}(t) = {getattr(self, attr)} cannot be "
                            f"evaluated with torch ({type(error).__name__}: {error})"
                        ) from None
                    expected = exact(t)
                    if mpmath.isinf(expected) and value == float(expected):
                        continue  # e.g. λ = −log σ = +∞ where σ = 0
                    if not abs(value - expected) <= 1e-9 * abs(expected) + 1e-300:
                        raise ScheduleError(
                            f"schedule {self.name!r}: the torch twin of {attr}(t) gives {value!r} "
                            f"at t = {mpmath.nstr(t, 8)}, SymPy {mpmath.nstr(expected, 17)}"
                        )

    def conversion(self, kind_from: str, kind_to: str) -> tuple[sympy.Expr, sympy.Expr]:
        """(c_x, c_pred) with ``to = c_x x_t + c_pred from``; see :mod:`sdebench.theory.parameterisation`."""
        return derive_conversion(kind_from, kind_to, self.s, self.sigma)

    @cached_property
    def numeric(self) -> NumericSchedule:
        """Torch functions lambdified from this schedule (cached)."""
        return NumericSchedule(self)


_NUMERIC_FUNCTIONS = ("s", "sigma", "f", "g2", "g", "half_log_snr")
"""The functions of t that solvers evaluate (lambdified once per schedule)."""

_MEMO_SIZE = 4096


def _memoised(fn):
    """Cache ``fn`` at scalar CPU times: a sampling loop evaluates the same few grid times many
    times, and each lambdified evaluation is a chain of small torch ops (tens of µs). Callers
    get a copy, so that an in-place update of a result cannot corrupt the cache."""
    cache: dict = {}

    def wrapper(t):
        if not (isinstance(t, torch.Tensor) and t.ndim == 0 and t.device.type == "cpu"):
            return fn(t)
        key = (t.item(), t.dtype)
        value = cache.get(key)
        if value is None:
            if len(cache) >= _MEMO_SIZE:
                cache.clear()
            value = cache[key] = fn(t)
        return value.clone()

    wrapper.__doc__ = fn.__doc__
    return wrapper


class NumericSchedule:
    """Torch functions of t (any dtype/device) lambdified from a :class:`Schedule`.

    Attributes ``s, sigma, f, g2, g, half_log_snr`` are callables ``fn(t)``;
    ``sigma_inv(sigma)`` inverts σ (closed form or bisection); ``conversion(a, b)`` returns
    ``fn(x, prediction, t)`` converting predictions (:mod:`sdebench.theory.parameterisation`).
    """

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.name = schedule.name
        self.t_min = float(schedule.t_min)
        self.t_max = float(schedule.t_max)
        self.sigma_max = float(schedule.sigma.subs(T, schedule.t_max))
        for attr in _NUMERIC_FUNCTIONS:
            setattr(self, attr, _memoised(lambdify(getattr(schedule, attr))))
        self._sigma_inverse = (
            None
            if schedule.sigma_inverse is None
            else lambdify(schedule.sigma_inverse, variable=SIGMA)
        )
        self._conversions: dict = {}

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        """t(σ): closed form when the schedule has one, else bisection on [t_min, t_max]."""
        if self._sigma_inverse is not None:
            return self._sigma_inverse(sigma)
        lo = torch.full_like(sigma, self.t_min)
        hi = torch.full_like(sigma, self.t_max)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            below = self.sigma(mid) < sigma
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def t_of_half_log_snr(self, lam: torch.Tensor) -> torch.Tensor:
        """Inverse of λ(t) = −log σ(t) (Lu et al. 2022, t_λ)."""
        return self.sigma_inv(torch.exp(-lam))

    def conversion_coefficients(self, kind_from: str, kind_to: str):
        """Functions (c_x(t), c_pred(t)) with ``to = c_x x + c_pred from`` (cached)."""
        key = (kind_from, kind_to)
        if key not in self._conversions:
            c_x, c_pred = self.schedule.conversion(kind_from, kind_to)
            self._conversions[key] = (_memoised(lambdify(c_x)), _memoised(lambdify(c_pred)))
        return self._conversions[key]

    def conversion(self, kind_from: str, kind_to: str):
        """``fn(x, prediction, t)`` returning the ``kind_to`` prediction."""
        fx, fp = self.conversion_coefficients(kind_from, kind_to)

        def convert(x, prediction, t):
            return fx(t) * x + fp(t) * prediction

        return convert
