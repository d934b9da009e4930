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
from sdebench.theory.kernel import T

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
    numeric_expr = _freeze_constants(sympy.sympify(expr))
    modules = [_TORCH_FUNCTIONS] if backend == "torch" else ["numpy"]
    raw = sympy.lambdify(variables, numeric_expr, modules=modules)

    if backend == "torch":
        def fn(*args: torch.Tensor) -> torch.Tensor:
            out = raw(*args)
            if not isinstance(out, torch.Tensor):
                out = torch.as_tensor(out, dtype=args[0].dtype, device=args[0].device)
            return torch.broadcast_to(out, torch.broadcast_shapes(*(a.shape for a in args)))
    else:
        def fn(*args: np.ndarray) -> np.ndarray:
            args = [np.asarray(a, dtype=float) for a in args]
            return np.broadcast_to(np.asarray(raw(*args), dtype=float),
                                   np.broadcast_shapes(*(a.shape for a in args)))

    fn.__doc__ = f"Lambdified {expr} ({backend})."
    return fn
