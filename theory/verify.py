"""Deciding that a residual expression vanishes identically.

Two methods, reported in the :class:`Verdict`:

* ``symbolic``: after hiding the x-dependent Gaussian exponentials behind symbols E_k (a residual
  built from a mixture density is a polynomial in them), every coefficient simplifies to 0.
* ``mpmath``: where SymPy cannot decide in reasonable time (typically trigonometric or nested
  exponential schedules), every coefficient is evaluated at random points with 50 significant
  digits and must be below 10⁻³⁵ relative to the size of its terms. This is strong numerical
  evidence, not a proof, and the verdict says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import mpmath
import sympy

DIGITS = 50
RELATIVE_TOLERANCE = mpmath.mpf(10) ** -35


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`prove_zero`: ``zero`` and how it was decided."""

    zero: bool
    method: str
    detail: str = ""

    def __bool__(self) -> bool:
        return self.zero


def _coefficients(expr: sympy.Expr, hide: sympy.Symbol | None) -> list[sympy.Expr]:
    """Numerator coefficients of ``expr`` as a polynomial in exponentials that depend on ``hide``."""
    expr = sympy.sympify(expr).doit()
    if hide is None:
        return [expr]
    hidden: dict = {}
    expr = expr.replace(
        lambda a: isinstance(a, sympy.exp) and a.has(hide),
        lambda a: hidden.setdefault(sympy.expand(a.args[0]), sympy.Dummy("E")),
    )
    numerator, _ = sympy.fraction(sympy.together(expr))
    if not hidden:
        return [numerator]
    return sympy.Poly(sympy.expand(numerator), *hidden.values()).coeffs()


def _numeric_size(terms: list, point: list) -> tuple[mpmath.mpf, mpmath.mpf]:
    """|Σ terms| and Σ |terms| at ``point`` (the scale that round-off is relative to)."""
    values = [term(*point) for term in terms]
    return abs(mpmath.fsum(values)), mpmath.fsum(abs(v) for v in values)


_CHEAP_OPS = 120


def prove_zero(
    expr: sympy.Expr,
    ranges: dict[sympy.Symbol, tuple[float, float]],
    *,
    hide: sympy.Symbol | None = None,
    symbolic: bool = True,
    points: int = 4,
    seed: int = 0,
) -> Verdict:
    """Decide whether ``expr`` is identically zero.

    ``symbolic=True``: hide the x-dependent exponentials of ``hide`` behind symbols and simplify
    every coefficient (the proof route, used for the generic kernel). ``symbolic=False`` (concrete
    schedules, where ``simplify`` can take minutes): a cheap ``cancel`` when the expression is
    small, else evaluation at ``points`` random points drawn from ``ranges`` at 50 digits.
    """
    expr = sympy.sympify(expr).doit()
    if symbolic:
        undecided = []
        for coefficient in _coefficients(expr, hide):
            coefficient = sympy.simplify(sympy.cancel(coefficient))
            if coefficient != 0:
                undecided.append(coefficient)
        if undecided:
            return Verdict(False, "symbolic", f"does not simplify to 0: {undecided[0]}")
        return Verdict(True, "symbolic")
    if expr == 0 or (sympy.count_ops(expr) < _CHEAP_OPS and sympy.cancel(expr) == 0):
        return Verdict(True, "symbolic")
    symbols = sorted(expr.free_symbols, key=str)
    missing = set(symbols) - set(ranges)
    if missing:
        raise ValueError(f"no sampling range for symbols {missing}")
    terms = [sympy.lambdify(symbols, term, "mpmath") for term in sympy.Add.make_args(expr)]
    rng = random.Random(seed)
    with mpmath.workdps(DIGITS):
        for _ in range(points):
            point = [mpmath.mpf(rng.uniform(*ranges[symbol])) for symbol in symbols]
            value, scale = _numeric_size(terms, point)
            if value > RELATIVE_TOLERANCE * max(scale, mpmath.mpf(10) ** -300):
                where = dict(zip(symbols, (mpmath.nstr(p, 8) for p in point), strict=True))
                return Verdict(False, "mpmath", f"|residual| = {mpmath.nstr(value, 5)} at {where}")
    return Verdict(True, "mpmath", f"|residual| < 1e-35 relative at {points} random points")


def is_nonzero_somewhere(
    expr: sympy.Expr, point: dict[sympy.Symbol, float], threshold: float = 1e-6
) -> bool:
    """Negative controls: ``expr`` evaluated at ``point`` is clearly away from 0."""
    with mpmath.workdps(DIGITS):
        value = abs(mpmath.mpmathify(sympy.N(sympy.sympify(expr).doit().subs(point), DIGITS)))
    return value > threshold
