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
    table: the discrete training table whose continuous schedule this is
        (:class:`~theory.beta_tables.BetaTable`; the catalogue's ``table``), or None.

    A *pure-noise end* (flow matching, zero terminal SNR) is allowed: s(t_max) = 0 exactly, where
    σ = ∞ and λ = −∞, provided the kernel's standard deviation sσ has a finite positive value
    there as written (the expression of σ must cancel against s, as t/(1 − t) · (1 − t) does).
    Then ``pure_noise_end`` is True, x_{t_max} = sσ ε is pure noise, and the numeric twin's
    ``s``, ``kernel_std`` and ``pf_coefficients`` are finite at t_max; samplers that start there
    must declare ``handles_infinite_sigma`` (:mod:`sdebench.solvers.solver`).

    Raises
    ------
    ScheduleError
        if t_min ≥ t_max, an expression has free symbols other than t, or at any of 513 points of
        the range s ≤ 0, σ < 0, σ̇ ≤ 0 or a value is not finite (checked with mpmath at 30 digits;
        at a pure-noise end: sσ finite and positive instead).
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
        table=None,
    ):
        super().__init__(s, sigma, name=name)
        self.table = table
        self.t_min = exact_number(t_min, "t_min")
        self.t_max = exact_number(t_max, "t_max")
        self.sigma_inverse = None if sigma_inverse is None else sympy.sympify(sigma_inverse)
        self.reference = reference
        self.pure_noise_end = sympy.simplify(self.s.subs(T, self.t_max)) == 0
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
        interior = _VALIDATION_POINTS - 1 if self.pure_noise_end else _VALIDATION_POINTS
        with mpmath.workdps(30):
            functions = [(label, sympy.lambdify(T, e, "mpmath"), ok) for label, e, ok in checks]
            lo, hi = mpmath.mpf(self.t_min), mpmath.mpf(self.t_max)
            if self.pure_noise_end:
                self._check_pure_noise_end()
            for k in range(interior):
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

    def _check_pure_noise_end(self) -> None:
        """At a pure-noise end s(t_max) = 0 the kernel's std sσ must be finite and positive as
        written (then x_{t_max} = sσ ε carries no data and the PF-ODE coefficients stay finite)."""
        try:
            std = sympy.lambdify(T, self.kernel_std, "mpmath")(mpmath.mpf(self.t_max))
        except (ZeroDivisionError, ValueError, TypeError):
            std = mpmath.nan
        if not (mpmath.isfinite(std) and mpmath.im(std) == 0 and std > 0):
            raise ScheduleError(
                f"schedule {self.name!r}: s(t_max) = 0 (pure noise at t_max = {self.t_max}) needs "
                f"the kernel's std s*sigma = {self.kernel_std} finite and positive at t_max, got "
                f"{mpmath.nstr(std, 6)}: write sigma so that s*sigma cancels (e.g. sigma = "
                "t/(1 - t) with s = 1 - t), or end the range before t_max")

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
        (round-off of a few dozen operations, amplified by at most ~10⁵ by cancellation); at a
        pure-noise end relative to the function's largest value on the points (a coefficient
        that vanishes there, vp0snr's a_x, is a difference of terms of that size)."""
        try:
            numeric = self.numeric
        except Exception as error:
            raise ScheduleError(f"schedule {self.name!r} cannot be evaluated with torch "
                                f"({type(error).__name__}: {error})") from None
        functions = [(attr, getattr(self, attr), getattr(numeric, attr))
                     for attr in _NUMERIC_FUNCTIONS]
        for index, name in enumerate(("a_x", "a_D")):
            functions.append((f"pf_coefficients {name}", self.pf_coefficients[index],
                              lambda t, i=index: numeric.pf_coefficients(t)[i]))
        hi = mpmath.mpf(self.t_max)
        zero_sigma_start = sympy.simplify(self.sigma.subs(T, self.t_min)) == 0
        with mpmath.workdps(30):
            for attr, expression, function in functions:
                exact = sympy.lambdify(T, expression, "mpmath")
                # at a pure-noise end only what stays finite there is evaluated at t_max
                at_end = not self.pure_noise_end or attr in _FINITE_AT_PURE_NOISE \
                    or attr.startswith("pf_coefficients")
                # nor the PF-ODE's coefficients where σ = 0 (a_x = (sσ)˙/(sσ) is infinite; no
                # solver evaluates the model there, see handles_zero_sigma)
                at_start = not (attr.startswith("pf_coefficients") and zero_sigma_start)
                times = [mpmath.mpf(self.t_min) + (self.t_max - self.t_min) * mpmath.mpf(k) / 8
                         for k in range(0 if at_start else 1, 9 if at_end else 8)]
                expected = [exact(t) for t in times]
                # a coefficient that is 0 at a pure-noise end (vp0snr's a_x) is the difference
                # of terms of the function's own size there: its round-off is relative to that
                scale = max((abs(e) for e in expected if mpmath.isfinite(e)), default=0)
                # the PF drift a_x x + a_D x̂₀ is judged against its largest term (x and x̂₀ are
                # of one size): a_x = f − ½g²c_x is 10⁻⁹ of f at t = 1 of a constant-β VP
                drift_terms = [sympy.lambdify(T, e, "mpmath") for e in (
                    *self.pf_coefficients, self.f, self.ds)] \
                    if attr.startswith("pf_coefficients") else []
                for t, exact_value in zip(times, expected, strict=True):
                    try:
                        value = float(function(torch.tensor(float(t), dtype=torch.float64)))
                    except Exception as error:
                        raise ScheduleError(
                            f"schedule {self.name!r}: {attr}(t) = {expression} cannot be "
                            f"evaluated with torch ({type(error).__name__}: {error})"
                        ) from None
                    if mpmath.isinf(exact_value) and value == float(exact_value):
                        continue  # e.g. λ = −log σ = +∞ where σ = 0
                    size = max(abs(exact_value), scale) if self.pure_noise_end and t == hi \
                        else abs(exact_value)
                    size = max([size, *(_finite_abs(term, t) for term in drift_terms)])
                    if not abs(value - exact_value) <= 1e-9 * size + 1e-300:
                        raise ScheduleError(
                            f"schedule {self.name!r}: the torch twin of {attr}(t) gives {value!r} "
                            f"at t = {mpmath.nstr(t, 8)}, SymPy {mpmath.nstr(exact_value, 17)}"
                        )

    def conversion(self, kind_from: str, kind_to: str) -> tuple[sympy.Expr, sympy.Expr]:
        """(c_x, c_pred) with ``to = c_x x_t + c_pred from``; see :mod:`sdebench.theory.parameterisation`."""
        return derive_conversion(kind_from, kind_to, self.s, self.sigma)

    @cached_property
    def numeric(self) -> NumericSchedule:
        """Torch functions lambdified from this schedule (cached)."""
        return NumericSchedule(self)


def _finite_abs(function, t):
    """|function(t)| in mpmath, 0 where it is infinite or undefined (f at a pure-noise end)."""
    try:
        value = function(t)
    except ZeroDivisionError:
        return mpmath.mpf(0)
    return abs(value) if mpmath.isfinite(value) else mpmath.mpf(0)


_NUMERIC_FUNCTIONS = ("s", "sigma", "kernel_std", "f", "g2", "g", "half_log_snr")
"""The functions of t that solvers evaluate (lambdified once per schedule)."""

_FINITE_AT_PURE_NOISE = ("s", "kernel_std")
"""What stays finite at a pure-noise end (s = 0, σ = ∞): there σ, f, g², g and λ are infinite."""

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
        self.pure_noise_end = schedule.pure_noise_end
        self.sigma_max = math.inf if self.pure_noise_end \
            else float(schedule.sigma.subs(T, schedule.t_max))
        for attr in _NUMERIC_FUNCTIONS:
            setattr(self, attr, _memoised(lambdify(getattr(schedule, attr))))
        self._pf_coefficients = tuple(_memoised(lambdify(c)) for c in schedule.pf_coefficients) \
            if self.pure_noise_end else None
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

    def pf_coefficients(self, t):
        """(a_x, a_D) with PF drift f x − ½ g² ∇log p = a_x x + a_D x̂₀.

        Computed as f − ½ g² c_x and −½ g² c_D from the functions above; on a schedule with a
        pure-noise end, where f and g² diverge at t_max, from the finite (s, sσ) form of
        :attr:`~sdebench.theory.kernel.Kernel.pf_coefficients` instead (its value at t_max is
        the limit)."""
        if self._pf_coefficients is not None:
            return tuple(c(t) for c in self._pf_coefficients)
        c_x, c_denoised = self.conversion_coefficients("x0", "score")
        half_g2 = 0.5 * self.g2(t)
        return self.f(t) - half_g2 * c_x(t), -half_g2 * c_denoised(t)

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
