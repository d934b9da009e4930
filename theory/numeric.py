"""Lambdify SymPy expressions of t into torch or numpy functions, any dtype and device.

Printing goes through SymPy's own code printers (``TorchPrinter``, NumPy's printer), so every
function they know — exp, log, erf, Piecewise, Abs, floor, loggamma, … — works; this module adds
what torch lacks for Python-number arguments (Max, Min, Heaviside with constant arguments) and
erfc/gamma. Before printing:

* sums that cancel are rewritten as the same function without the cancellation
  (:func:`numerically_stable`): k eᵘ − k → k expm1(u), cos a ∓ cos b → products, log(1 + u) →
  log1p(u). VP's σ = √(e^B − 1) would otherwise lose half of float32's digits near t_min,
  where B ≈ 10⁻⁴, and its x̂₀ → score coefficient e^B/(1 − e^B) 6.5e-13 relative in float64
  (Higham 2002, §1.14.1; theory/tests/test_codegen_accuracy.py);
* numeric constants (log 50, √2, π, …) are evaluated to 30 digits, so the generated code holds
  Python floats: they take the dtype of the input tensor (float64 stays float64, float32 stays
  float32) and never force a host round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import sympy
import torch
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.pytorch import TorchPrinter

from sdebench.theory.kernel import T

BACKENDS = ("torch", "numpy")


def _tensor_args(args):
    reference = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if reference is None:
        return [torch.as_tensor(a) for a in args]
    return [a if isinstance(a, torch.Tensor)
            else torch.as_tensor(a, dtype=reference.dtype, device=reference.device) for a in args]


def _maximum(*args):
    return functools.reduce(torch.maximum, _tensor_args(args))


def _minimum(*args):
    return functools.reduce(torch.minimum, _tensor_args(args))


def _heaviside(x, value_at_zero):
    x, value_at_zero = _tensor_args((x, value_at_zero))
    return torch.heaviside(x, value_at_zero)


def _where(condition, if_true, if_false):
    """torch.where with Python-number branches cast to the dtype of the tensor branch, or to
    float64 when both are numbers (``torch.where(c, 1, 1.41)`` would be float32, torch's default
    dtype; :func:`lambdify` casts the final result to the input's dtype)."""
    reference = next((a for a in (if_true, if_false) if isinstance(a, torch.Tensor)), None)
    dtype = reference.dtype if reference is not None else torch.float64
    if_true, if_false = (a if isinstance(a, torch.Tensor)
                         else torch.as_tensor(a, dtype=dtype, device=condition.device)
                         for a in (if_true, if_false))
    return torch.where(condition, if_true, if_false)


def _gamma(x):
    """Γ(x) = sign · exp(log|Γ(x)|); torch has only the logarithm."""
    sign = torch.where((x > 0) | (torch.floor(x) % 2 == 0), 1.0, -1.0).to(x.dtype)
    return sign * torch.exp(torch.special.gammaln(x))


_TORCH_HELPERS = {"_maximum": _maximum, "_minimum": _minimum, "_heaviside": _heaviside,
                  "_gamma": _gamma, "_where": _where}


class _Printer(TorchPrinter):
    """SymPy's torch printer plus expm1/log1p/erfc/gamma, and Max/Min/Heaviside/Piecewise safe
    for Python-number arguments (a Piecewise outside all its conditions is NaN)."""

    mapping = {
        **TorchPrinter.mapping,
        expm1: "torch.expm1",
        log1p: "torch.log1p",
        sympy.erfc: "torch.special.erfc",
        sympy.gamma: "_gamma",
        sympy.Max: "_maximum",
        sympy.Min: "_minimum",
    }
    _print_gamma = TorchPrinter._print_Function

    def _print_Piecewise(self, expr):
        value, condition = expr.args[0].args
        otherwise = sympy.Piecewise(*expr.args[1:]) if len(expr.args) > 1 else sympy.nan
        return f"_where({self._print(condition)}, {self._print(value)}, {self._print(otherwise)})"

    def _print_Heaviside(self, expr):
        value_at_zero = expr.args[1] if len(expr.args) > 1 else sympy.Rational(1, 2)
        return f"_heaviside({self._print(expr.args[0])}, {self._print(value_at_zero)})"


def _freeze_constants(expr: sympy.Expr) -> sympy.Expr:
    """Replace every constant subexpression (cos(π/250), log 50, ...) by a 30-digit Float. A
    function is rebuilt unevaluated: expm1(a t + c) with a Float c would otherwise evaluate to
    e^c·e^{a t} − 1, the cancellation :func:`numerically_stable` removed."""
    if expr.is_number and not expr.is_Integer:
        return sympy.Float(expr.evalf(30), 30)
    if not expr.args:
        return expr
    args = (_freeze_constants(arg) for arg in expr.args)
    return expr.func(*args, evaluate=False) if isinstance(expr, sympy.Function) \
        else expr.func(*args)


def _term_parts(term: sympy.Expr):
    """(k, head, a) with term = k·head(a) for head exp or cos and a number k; a number c is
    (c, None, 0), i.e. c·exp(0) or c·cos(0); anything else None."""
    k, rest = term.as_coeff_Mul()
    if isinstance(rest, sympy.exp | sympy.cos):
        return k, type(rest), rest.args[0]
    if term.is_number:
        return term, None, sympy.S.Zero
    return None


def _cancellation_free_pair(first, second) -> sympy.Expr | None:
    """The sum of two terms (k₁, head₁, a), (k₂, head₂, b) of :func:`_term_parts` rewritten
    without the cancellation it may suffer, or None if it has no such form (Higham 2002,
    §1.14.1; Abramowitz & Stegun 4.3.37–38):

        k eᵃ − k           = k expm1(a),
        k cos a − k cos b  = −2k sin((a + b)/2) sin((a − b)/2),
        k cos a + k cos b  =  2k cos((a + b)/2) cos((a − b)/2)

    (b = 0 where the second term is the number ∓k: k(cos a − 1) = −2k sin²(a/2), k(1 + cos a)
    = 2k cos²(a/2)). The differences a − b and sums a + b are formed symbolically, so they are
    exact where the terms cancel (cos(π(125t + 1)/126) − cos(π/126) of the cosine schedule)."""
    (k, head, a), (c, other, b) = first, second
    if head is sympy.exp and other is None and k + c == 0:
        return k * expm1(a)
    if head is sympy.cos and other in (sympy.cos, None):
        if k + c == 0:
            return -2 * k * sympy.sin((a + b) / 2) * sympy.sin((a - b) / 2)
        if k == c:
            return 2 * k * sympy.cos((a + b) / 2) * sympy.cos((a - b) / 2)
    return None


def _stable_sum(add: sympy.Add) -> sympy.Expr:
    """``add`` with every pair of terms of :func:`_cancellation_free_pair` rewritten."""
    terms = list(add.args)
    parts = [_term_parts(term) for term in terms]
    for i, first in enumerate(parts):
        for j, second in enumerate(parts):
            if i == j or first is None or first[1] is None or second is None:
                continue
            rewritten = _cancellation_free_pair(first, second)
            if rewritten is not None:
                rest = sympy.Add(*(term for n, term in enumerate(terms) if n not in (i, j)))
                return rewritten + (_stable_sum(rest) if rest.is_Add else rest)
    return add


def numerically_stable(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` rewritten as the same function without cancellation in floating point:
    k eᵘ − k → k expm1(u) (so e^B/(1 − e^B), 1 − e^{−B}, 1/(e^B − 1), √(e^B − 1) lose nothing
    where B → 0), differences and sums of cosines → products of sines and cosines
    (:func:`_cancellation_free_pair`), then log(1 + u) → log1p(u) (log(1 − e^{−x}) has become
    log(−expm1(−x)) by then). A structural rewrite of sums, innermost first, that leaves
    number-only subexpressions alone (:func:`lambdify` evaluates them to 30 digits); SymPy's
    own ``expm1_opt`` factors every sum and costs seconds per expression."""
    expr = sympy.sympify(expr).replace(lambda e: e.is_Add and not e.is_number, _stable_sum)
    return expr.replace(
        lambda e: isinstance(e, sympy.log) and e.args[0].is_Add and sympy.S.One in e.args[0].args,
        lambda e: log1p(e.args[0] - 1),
    )


def lambdify(expr: sympy.Expr, backend: str = "torch",
             variable: sympy.Symbol | tuple[sympy.Symbol, ...] = T) -> Callable:
    """Return ``fn(u)`` evaluating ``expr`` elementwise at ``u`` (a tensor or array); with a
    tuple of variables, ``fn(u, v, …)`` broadcasting its arguments.

    The result always has the (broadcast) shape, dtype and device of the arguments, also for
    constant expressions.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    variables = variable if isinstance(variable, tuple) else (variable,)
    extra = sympy.sympify(expr).free_symbols - set(variables)
    if extra:
        raise ValueError(f"expression {expr} has free symbols {extra} besides {variables}")
    numeric_expr = _freeze_constants(numerically_stable(expr))
    if backend == "torch":
        raw = sympy.lambdify(variables, numeric_expr, modules=[_TORCH_HELPERS, "torch"],
                             printer=_Printer)

        def fn(*args: torch.Tensor) -> torch.Tensor:
            out = raw(*args)
            if not isinstance(out, torch.Tensor) or out.dtype != args[0].dtype:
                out = torch.as_tensor(out, dtype=args[0].dtype, device=args[0].device)
            return torch.broadcast_to(out, torch.broadcast_shapes(*(a.shape for a in args)))
    else:
        raw = sympy.lambdify(variables, numeric_expr, modules=["scipy", "numpy"])

        def fn(*args: np.ndarray) -> np.ndarray:
            args = [np.asarray(a, dtype=float) for a in args]
            return np.broadcast_to(np.asarray(raw(*args), dtype=float),
                                   np.broadcast_shapes(*(a.shape for a in args)))

    fn.__doc__ = f"Lambdified {expr} ({backend})."
    return fn
