"""The one sampling loop that serves every solver (Karras et al. 2022, Alg. 1 shape)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from sdebench.solvers.context import Denoiser, FiniteMonitor, StepContext
from sdebench.solvers.grids import check_grid
from sdebench.solvers.noise import GaussianIncrements
from sdebench.solvers.solver import check_declarations, is_path_sampler
from sdebench.theory.schedule import Schedule


@dataclass
class SampleResult:
    x: object
    nfe: int


def _check_state(x, ts: torch.Tensor) -> None:
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating tensor, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"x must have shape (batch, ...), got {tuple(x.shape)}")
        if x.device != ts.device and ts.device.type != "cpu":
            raise ValueError(f"x is on {x.device} but the time grid is on {ts.device} (keep the "
                             "grid on x's device or on the CPU)")


def final_sigma_is_zero(schedule: Schedule, ts: torch.Tensor) -> bool:
    """Whether the grid ends where σ = 0 (e.g. ``edm:sigma_min=0``)."""
    return float(schedule.numeric.sigma(ts[-1:].cpu())[0]) == 0.0


def check_zero_sigma(solver, schedule: Schedule, ts: torch.Tensor) -> bool:
    """A grid that ends at σ = 0 is only for solvers that declare ``handles_zero_sigma``; the
    others divide by σ(t_next) (h = log σ/σ' is infinite). Returns whether σ(ts[-1]) = 0."""
    zero = final_sigma_is_zero(schedule, ts)
    if zero and not getattr(solver, "handles_zero_sigma", False):
        raise ValueError(
            f"the time grid ends at t = {float(ts[-1]):g} where sigma = 0 ({schedule.name!r}), and "
            f"{type(solver).__name__} divides by sigma(t_next): end the grid at sigma > 0, or use a "
            "solver that declares handles_zero_sigma (e.g. euler, heun, ddim, euler_maruyama)"
        )
    return zero


def starts_at_pure_noise(schedule: Schedule, ts: torch.Tensor) -> bool:
    """Whether the grid starts at the schedule's pure-noise end (s = 0, σ = ∞: ``rf``, ``vp0snr``)."""
    return schedule.pure_noise_end and float(ts[0]) >= float(schedule.t_max)


def infinite_sigma_refusal(solver, schedule: Schedule) -> str:
    """Why ``solver`` cannot start at the pure-noise end of ``schedule``, or '' when it can."""
    if not schedule.pure_noise_end or getattr(solver, "handles_infinite_sigma", False):
        return ""
    return (f"{getattr(solver, 'name', type(solver).__name__)} cannot start at t = "
            f"{float(schedule.t_max):g} of {schedule.name!r}, where s = 0 and sigma = infinity (pure "
            "noise): its step uses sigma, log-SNR, f or g, which are infinite there, and does not "
            "declare handles_infinite_sigma")


def schedule_refusal(solver, schedule: Schedule) -> str:
    """Why ``solver`` cannot run on ``schedule``, or '': its pure-noise start
    (:func:`infinite_sigma_refusal`), or the solver's own ``schedule_refusal(schedule)``."""
    declared = getattr(solver, "schedule_refusal", None)
    return infinite_sigma_refusal(solver, schedule) or (declared(schedule) if declared else "")


def check_infinite_sigma(solver, schedule: Schedule, ts: torch.Tensor) -> None:
    """A grid that starts at a pure-noise end is only for solvers that declare
    ``handles_infinite_sigma`` (they take the step's exact limit there)."""
    if starts_at_pure_noise(schedule, ts):
        reason = infinite_sigma_refusal(solver, schedule)
        if reason:
            raise ValueError(f"{reason}: start the grid below t_max, or use a solver that declares "
                             "it (euler, heun, rk4, ddim, dpmpp_2m, unipc_bh2, ancestral)")


def sample(
    solver,
    model: Denoiser,
    schedule: Schedule,
    x,
    ts: torch.Tensor,
    *,
    noise=None,
    callback: Callable | None = None,
    progress: bool = False,
    check_finite: str = "auto",
    enable_grad: bool = False,
) -> SampleResult:
    """Integrate from ``ts[0]`` down to ``ts[-1]`` starting at ``x`` (a sample of p_{ts[0]}).

    ``solver`` is a solver object (names are resolved by :func:`sdebench.solvers.get_solver`).
    ``noise`` (default: :class:`~sdebench.solvers.noise.GaussianIncrements` with seed 0) feeds
    stochastic solvers. ``callback(i, t_cur, t_next, x_next)`` is called after each step.
    ``check_finite`` (``"auto"``, ``"step"``, ``"end"``, ``"off"``): when model outputs and states
    are checked for NaN/Inf (:class:`~sdebench.solvers.context.FiniteMonitor`); ``"end"`` has no
    host sync inside the loop, and ``"auto"`` is ``"step"`` for a CPU state, ``"end"`` otherwise.
    The grid may stay on the CPU while ``x`` is on an accelerator: schedule coefficients are then
    host scalars (``tests/test_cuda.py``: no host sync on an H100); they are evaluated once
    over the whole grid (:mod:`sdebench.solvers.coefficients`), not step by step. Sampling runs without
    autograd (a network's activations are not kept) unless ``enable_grad``; a model that needs
    gradients inside its call (e.g. guidance) can still open ``torch.enable_grad()`` there.
    """
    check_declarations(solver)
    _check_state(x, ts)
    check_grid(ts, schedule)
    monitor = FiniteMonitor(check_finite, ts, x)
    monitor.check(x, 0, "initial state")
    if is_path_sampler(solver):
        return _integrate(solver, model, schedule, x, ts, noise, monitor, enable_grad)
    steps = ts.numel() - 1
    check_infinite_sigma(solver, schedule, ts)
    ctx = StepContext(model, schedule, noise if noise is not None else GaussianIncrements(0), steps,
                      monitor, final_sigma_is_zero=check_zero_sigma(solver, schedule, ts), ts=ts)
    init_state = getattr(solver, "init_state", None)
    state = init_state() if init_state is not None else None
    with torch.set_grad_enabled(enable_grad):
        for i in tqdm(range(steps), disable=not progress, desc=getattr(solver, "name", "sample")):
            t_cur, t_next = ctx.start_step(i)  # the schedule's coefficients there are tabulated
            x, state = solver.step(ctx, x, t_cur, t_next, state)
            monitor.check(x, i, "state")
            if callback is not None:
                callback(i, t_cur, t_next, x)
    monitor.finish()
    return SampleResult(x, ctx.nfe)


class CountingModel:
    """The model, its calls counted (a path sampler evaluates it inside a peer's own loop)."""

    def __init__(self, model: Denoiser):
        self.model, self.calls = model, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


def _integrate(solver, model, schedule, x, ts, noise, monitor, enable_grad) -> SampleResult:
    """A path sampler's whole run (its library's loop); only its output is checked for NaN/Inf
    (the error says so)."""
    counting = CountingModel(model)
    with torch.set_grad_enabled(enable_grad):
        x = solver.integrate(counting, schedule, x, ts, noise)
    monitor.check(x, ts.numel() - 2, "output")
    monitor.finish()
    return SampleResult(x, counting.calls)
