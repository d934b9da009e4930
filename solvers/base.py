"""The solver contract and the one sampling loop that serves every solver.

A solver is a small object with ``order`` (ODE order, or weak order for stochastic solvers;
``None`` when the method does not converge to the target as steps grow), ``strong_order``,
``nfe_per_step``, ``stochastic`` and one step method

    step(ctx, x, t_cur, t_next, state) -> (x_next, state)

``ctx`` (:class:`StepContext`) evaluates the model and the schedule; ``state`` carries history for
multistep methods. :func:`sample` runs a solver over a time grid (Karras et al. 2022, Alg. 1 shape).

States ``x`` are torch tensors of shape (batch, ...) — or any object with the same arithmetic,
such as :class:`problems.law.GaussianLaw`, which turns every solver into its exact output law.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from sdebench.solvers.grids import check_grid
from sdebench.theory.schedule import Schedule
from tqdm.auto import tqdm

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""The model contract: ``denoiser(x, t) -> x̂₀ = E[x₀ | x_t = x]`` (EDM's D, in x-space)."""


class NonFiniteError(FloatingPointError):
    """The model returned NaN or Inf."""


FINITE_CHECKS = ("step", "end", "off")


def finite_flag(x):
    """Whether ``x`` has no NaN/Inf, as a 0-d bool tensor on x's device (no host sync) for tensors.

    One reduction pass: torch.aminmax propagates NaN to both outputs and ±Inf shows at an end
    (torch docs), ~20× cheaper than materialising ``isfinite(x)`` for a large batch on CPU.
    """
    if not isinstance(x, torch.Tensor):
        return x.all_finite()
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    low, high = torch.aminmax(x)
    return torch.isfinite(low) & torch.isfinite(high)


def all_finite(x) -> bool:
    return bool(finite_flag(x))


def mean_square_norm(x) -> torch.Tensor:
    """E‖x‖² over the batch (exact for a law object)."""
    if isinstance(x, torch.Tensor):
        return x.pow(2).flatten(1).sum(1).mean()
    return x.mean_square_norm()


def rms(x) -> torch.Tensor:
    """Root mean square over batch and dimensions (Hairer, Nørsett & Wanner I, eq. II.4.11)."""
    if isinstance(x, torch.Tensor):
        return x.pow(2).mean().sqrt()
    return (x.mean_square_norm() / x.numel_per_sample()).sqrt()


def axpy(y, a, x):
    """y + a x, fused into one kernel (torch.add with alpha) for tensors and scalar CPU a."""
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        if isinstance(a, float | int) or (isinstance(a, torch.Tensor) and a.ndim == 0
                                          and a.device.type == "cpu"):
            return torch.add(y, x, alpha=float(a))
    return y + a * x


class StepContext:
    """What a step may use: the model (NFE counted, output checked) and the numeric schedule.

    ``check_finite``: ``"step"`` raises at the first non-finite model output (one host sync per
    evaluation); ``"end"`` records a device-side flag per evaluation and raises, naming the first
    bad step, once sampling ends (no per-step sync: the accelerator queue never drains);
    ``"off"`` does not check.
    """

    def __init__(self, model: Denoiser, schedule: Schedule, noise, steps: int,
                 check_finite: str = "step"):
        if check_finite not in FINITE_CHECKS:
            raise ValueError(f"check_finite must be one of {FINITE_CHECKS}, got {check_finite!r}")
        self.model = model
        self.check_finite = check_finite
        self._pending_flags: list = []
        self.schedule = schedule.numeric
        self.noise = noise
        self.steps = steps
        self.step_index = 0
        self.nfe = 0
        self._to_eps = self.schedule.conversion("x0", "eps")
        self._score_coefficients = self.schedule.conversion_coefficients("x0", "score")

    def denoise(self, x, t: torch.Tensor):
        """x̂₀ = D(x, t); raises :class:`NonFiniteError` naming the step and time."""
        self.nfe += 1
        out = self.model(x, t)
        if getattr(out, "shape", None) != getattr(x, "shape", None):
            raise ValueError(
                f"model returned shape {tuple(getattr(out, 'shape', ()))} for input shape "
                f"{tuple(x.shape)} at step {self.step_index}, t = {float(t):.6g}"
            )
        if self.check_finite == "step" and not all_finite(out):
            raise _non_finite(self.step_index, t)
        if self.check_finite == "end":
            self._pending_flags.append((self.step_index, t, finite_flag(out)))
        return out

    def raise_pending(self) -> None:
        """With ``check_finite="end"``: one host sync over all recorded flags; raise
        :class:`NonFiniteError` naming the first evaluation that was not finite."""
        if not self._pending_flags:
            return
        flags = torch.stack([torch.as_tensor(flag) for _, _, flag in self._pending_flags])
        bad = torch.nonzero(~flags.cpu())
        if bad.numel():
            step_index, t, _ = self._pending_flags[int(bad[0])]
            raise _non_finite(step_index, t)

    def score(self, x, denoised, t):
        """∇log p_t = (s x̂₀ − x)/(s²σ²) = c_x x + c_D x̂₀, via theory.parameterisation."""
        c_x, c_denoised = self.score_coefficients(t)
        return c_x * x + c_denoised * denoised

    def eps(self, x, denoised, t):
        """ε̂ = (x − s x̂₀)/(sσ)."""
        return self._to_eps(x, denoised, t)

    def pf_drift(self, x, t):
        """Probability-flow drift f x − ½ g² ∇log p_t (Song et al. 2021, eq. 13), with the score
        c_x x + c_D x̂₀ folded into the coefficients: (f − ½g² c_x) x − ½g² c_D x̂₀."""
        c_x, c_denoised = self.score_coefficients(t)
        half_g2 = 0.5 * self.schedule.g2(t)
        return axpy((self.schedule.f(t) - half_g2 * c_x) * x, -half_g2 * c_denoised,
                    self.denoise(x, t))

    def score_coefficients(self, t):
        """(c_x, c_D) with ∇log p_t = c_x x + c_D x̂₀ = −x/(s²σ²) + x̂₀/(sσ²): steps that collect
        their update as a x + b x̂₀ (+ c z) touch each tensor once."""
        c_x, c_denoised = self._score_coefficients
        return c_x(t), c_denoised(t)

    def normal(self, t_cur, t_next, like, channel: int = 0):
        """A standard normal draw tied to the step [t_cur, t_next] (ΔW/√|Δt| of the noise source)."""
        return self.noise.normal(t_cur, t_next, like, channel)


def _non_finite(step_index: int, t) -> NonFiniteError:
    return NonFiniteError(f"model returned NaN/Inf at step {step_index} (t = {float(t):.6g})")


class Solver:
    """Base class: subclasses set the declared properties and implement :meth:`step`."""

    name: str = "solver"
    order: float | None = None
    strong_order: float | None = None
    nfe_per_step: float = 1
    stochastic: bool = False
    order_note: str = ""

    def init_state(self):
        return None

    def step(self, ctx: StepContext, x, t_cur, t_next, state):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, order={self.order})"


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
        if x.device != ts.device:
            raise ValueError(f"x is on {x.device} but the time grid is on {ts.device}")
        if not all_finite(x):
            raise ValueError("initial x contains NaN or Inf")


def sample(
    solver: Solver | str,
    model: Denoiser,
    schedule: Schedule,
    x,
    ts: torch.Tensor,
    *,
    noise=None,
    callback: Callable | None = None,
    progress: bool = False,
    check_finite: str = "step",
) -> SampleResult:
    """Integrate from ``ts[0]`` down to ``ts[-1]`` starting at ``x`` (a sample of p_{ts[0]}).

    ``noise`` (default: :class:`solvers.noise.GaussianIncrements` with seed 0) feeds stochastic
    solvers. ``callback(i, t_cur, t_next, x_next)`` is called after each step. ``check_finite``
    (``"step"``, ``"end"``, ``"off"``): when model outputs are checked for NaN/Inf
    (:class:`StepContext`); ``"end"`` avoids a host sync per step on accelerators.
    """
    from sdebench.solvers.noise import GaussianIncrements
    from sdebench.solvers.registry import get_solver

    if isinstance(solver, str):
        solver = get_solver(solver)
    check_grid(ts, schedule)
    _check_state(x, ts)
    steps = ts.numel() - 1
    ctx = StepContext(model, schedule, noise if noise is not None else GaussianIncrements(0), steps,
                      check_finite)
    state = solver.init_state()
    pairs = list(zip(ts[:-1], ts[1:], strict=True))
    for i, (t_cur, t_next) in enumerate(tqdm(pairs, disable=not progress, desc=solver.name)):
        ctx.step_index = i
        x, state = solver.step(ctx, x, t_cur, t_next, state)
        if callback is not None:
            callback(i, t_cur, t_next, x)
    ctx.raise_pending()
    return SampleResult(x, ctx.nfe)
