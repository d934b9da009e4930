"""The solver contract, declared once (torchsde's solver attributes, diffrax's ``order``).

A solver is a small object with one step method::

    step(ctx, x, t_cur, t_next, state) -> (x_next, state)

where ``ctx`` (:class:`sdebench.solvers.context.StepContext`) evaluates the model and the schedule
and ``state`` carries history for multistep methods (``init_state()`` gives its first value).
A step reads the schedule's coefficients as ``ctx.at(t).s``, ``.kernel_std``, ``.half_log_snr``,
``.pf_coefficients``, …: at t_cur and t_next they come from a table evaluated once over the grid
(:mod:`sdebench.solvers.coefficients`; Python floats when the grid is on the host), at other
times they are evaluated there, so a step costs only its state operations.
A step must keep to the state algebra of :mod:`sdebench.state`: then **every step is affine in x
and in the noise**, and the exact output law exists for Gaussian data.

Declarations (class attributes, checked when the class is made; a declaration that depends on
the solver's parameters may be a property, checked on the instance when sampling starts):

``order``              order of the output law's error in the step size: the ODE order, or the
                       weak order of a stochastic solver; ``None`` when the error does not vanish
                       as steps grow (then ``order_note`` says why)
``strong_order``       pathwise order on shared Brownian paths (stochastic solvers; else None)
``nfe_per_step``       model evaluations per step (``nan``: adaptive)
``stochastic``         whether the step draws noise
``handles_zero_sigma`` whether a step may end where σ = 0 (no division by σ(t_next)); default False
``handles_infinite_sigma`` whether a step may start at a pure-noise end (s = 0, σ = ∞, λ = −∞:
                       flow matching, zero terminal SNR) and take the exact limit there: it uses
                       only s, sσ and the PF-ODE coefficients, which stay finite; default False
``precision``          a dtype coarser than the state's that the solver computes in (a peer
                       library's float32 tables), or None; it sets the round-off floor

A *path sampler* (a peer library's whole loop, :mod:`sdebench.peers`) has no step: it declares
the same attributes and implements ``integrate(model, schedule, x, ts, noise) -> x_out``, which
:func:`sdebench.solvers.loop.sample` calls in place of its own loop. It may also implement
``check_options(schedule, steps)``, which a study calls once per schedule before its first unit,
to refuse option values that its library rejects only when it runs, and ``schedule_refusal(
schedule) -> str``: why it cannot run on a schedule at all ('' where it can; diffusers' flow
schedulers need a pure-noise end), which a study reports and runs the rest
(:func:`sdebench.solvers.loop.schedule_refusal`).

The constructor's parameters must be stored as attributes of the same names, so that
:meth:`Solver.parameters` can record them with every result.
"""

from __future__ import annotations

import inspect
import math
import numbers

import torch

DECLARATIONS = ("order", "strong_order", "nfe_per_step", "stochastic")


class _Undeclared:
    def __repr__(self) -> str:
        return "<undeclared>"


UNDECLARED = _Undeclared()


def _declaration_error(owner: str, name: str, value) -> str | None:
    """Why ``value`` is not a valid declaration ``name``, or None."""
    if name in ("order", "strong_order"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
                or not math.isfinite(value):
            return f"{owner}.{name} must be None or a positive number, got {value!r}"
    elif name == "nfe_per_step":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not (math.isnan(value) or value > 0):
            return f"{owner}.nfe_per_step must be a positive number (nan if adaptive), got {value!r}"
    elif name == "stochastic":
        if not isinstance(value, bool):
            return f"{owner}.stochastic must be True or False, got {value!r}"
    return None


def unit_roundoff(solver, dtype: torch.dtype) -> float:
    """u = eps/2 of what ``solver`` computes with: ``dtype``, or its coarser ``precision``."""
    precision = getattr(solver, "precision", None) or dtype
    return max(torch.finfo(dtype).eps, torch.finfo(precision).eps) / 2


def is_path_sampler(solver) -> bool:
    """Whether ``solver`` runs whole trajectories itself (``integrate``) instead of steps."""
    return callable(getattr(solver, "integrate", None))


def check_declarations(solver) -> None:
    """Raise TypeError naming the first missing or invalid declaration of a solver object (any
    object with a ``step`` method, not only :class:`Solver` subclasses)."""
    owner = type(solver).__name__
    if not callable(getattr(solver, "step", None)) and not is_path_sampler(solver):
        raise TypeError(f"{owner} is not a solver: it has no step(ctx, x, t_cur, t_next, state) "
                        "method (nor integrate(model, schedule, x, ts, noise))")
    for name in DECLARATIONS:
        value = getattr(solver, name, UNDECLARED)
        if value is UNDECLARED:
            raise TypeError(f"solver {owner} must declare {name} (see sdebench.solvers.solver)")
        error = _declaration_error(owner, name, value)
        if error:
            raise TypeError(error)
    if solver.strong_order is not None and not solver.stochastic:
        raise TypeError(f"{owner} declares a strong order but is not stochastic")
    if solver.order is None and not getattr(solver, "order_note", ""):
        raise TypeError(f"{owner} declares no order: order_note must say why")


class Solver:
    """Base class: subclasses declare :data:`DECLARATIONS` and implement :meth:`step`.

    ``class Name(Solver, abstract=True)`` makes an intermediate base that declares nothing yet.
    """

    order = UNDECLARED
    strong_order = UNDECLARED
    nfe_per_step = UNDECLARED
    stochastic = UNDECLARED
    handles_zero_sigma: bool = False
    handles_infinite_sigma: bool = False
    order_note: str = ""

    def __init_subclass__(cls, abstract: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        if cls.step is Solver.step:
            raise TypeError(f"solver {cls.__name__} must implement step(ctx, x, t_cur, t_next, state)")
        for name in DECLARATIONS:
            value = getattr(cls, name)
            if value is UNDECLARED:
                raise TypeError(f"solver {cls.__name__} must declare {name} "
                                "(see sdebench.solvers.solver)")
            if not isinstance(value, property):
                error = _declaration_error(cls.__name__, name, value)
                if error:
                    raise TypeError(error)
        if cls.order is None and not cls.order_note:
            raise TypeError(f"solver {cls.__name__} declares no order: order_note must say why")
        plain = not any(isinstance(getattr(cls, n), property) for n in ("strong_order", "stochastic"))
        if plain and cls.strong_order is not None and not cls.stochastic:
            raise TypeError(f"{cls.__name__} declares a strong order but is not stochastic")

    @property
    def name(self) -> str:
        return type(self).__name__

    def init_state(self):
        """The multistep history before the first step (None for one-step methods)."""
        return None

    def step(self, ctx, x, t_cur, t_next, state):
        raise NotImplementedError

    def parameters(self) -> dict:
        """The constructor's parameters and their values (recorded with every result)."""
        signature = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in list(signature.parameters)[1:]
                if signature.parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                           inspect.Parameter.VAR_KEYWORD)}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.parameters().items())
        return f"{type(self).__name__}({arguments})"
