"""Lambdify SymPy expressions of t into torch or numpy functions, any dtype and device.

Numeric constants (log 50, √2, π, …) are evaluated to 30 digits before printing, so the
generated code holds Python floats: they take the dtype of the input tensor (float64 stays
float64, float32 stays float32) and never force a host round trip.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import sympy
import torch

from theory.kernel import T

_TORCH_FUNCTIONS = {
    name: getattr(torch, name)
    for name in (
        "exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan",
        "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "expm1", "log1p",
    )
}
_TORCH_FUNCTIONS.update({"Abs": torch.abs, "pi": math.pi, "E": math.e})

BACKENDS = ("torch", "numpy")


def _freeze_constants(expr: sympy.Expr) -> sympy.Expr:
    """Replace every constant subexpression (cos(π/250), log 50, ...) by a 30-digit Float."""
    if expr.is_number and not expr.is_Integer:
        return sympy.Float(expr.evalf(30), 30)
    if not expr.args:
        return expr
    return expr.func(*(_freeze_constants(arg) for arg in expr.args))


def lambdify(expr: sympy.Expr, backend: str = "torch", variable: sympy.Symbol = T) -> Callable:
    """Return ``fn(u)`` evaluating ``expr`` elementwise at ``u`` (a tensor or array).

    The result always has the shape, dtype and device of ``u``, also for constant expressions.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    extra = sympy.sympify(expr).free_symbols - {variable}
    if extra:
        raise ValueError(f"expression {expr} has free symbols {extra} besides {variable}")
    numeric_expr = _freeze_constants(sympy.sympify(expr))
    modules = [_TORCH_FUNCTIONS] if backend == "torch" else ["numpy"]
    raw = sympy.lambdify(variable, numeric_expr, modules=modules)

    if backend == "torch":
        def fn(u: torch.Tensor) -> torch.Tensor:
            out = raw(u)
            if not isinstance(out, torch.Tensor):
                out = torch.as_tensor(out, dtype=u.dtype, device=u.device)
            return torch.broadcast_to(out, u.shape)
    else:
        def fn(u: np.ndarray) -> np.ndarray:
            u = np.asarray(u, dtype=float)
            return np.broadcast_to(np.asarray(raw(u), dtype=u.dtype), u.shape)

    fn.__doc__ = f"Lambdified {expr} ({backend})."
    return fn
