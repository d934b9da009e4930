"""What a step may use: the model (NFE counted, output checked), the numeric schedule, the noise
source, and where the step sits in the grid."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sdebench.solvers.coefficients import Coefficients, GridCoefficients
from sdebench.state import all_finite, axpy, finite_flag
from sdebench.theory.schedule import Schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""The model contract: ``denoiser(x, t) -> x̂₀ = E[x₀ | x_t = x]`` (EDM's D, in x-space)."""

FINITE_CHECKS = ("auto", "step", "end", "off")


class NonFiniteError(FloatingPointError):
    """A model output or a sampler state contains NaN or Inf."""


class FiniteMonitor:
    """Watches the initial state, model outputs and states for NaN/Inf.

    ``"step"`` raises at the first bad value (one host sync per check); ``"end"`` keeps the
    earliest bad check as a 0-d code on the state's device (a ``torch.minimum``, no host sync,
    constant memory for any number of steps) and raises once when sampling ends; ``"off"``
    checks nothing; ``"auto"`` is ``"step"`` for a state ``x`` on the CPU (a check stalls
    nothing there) and ``"end"`` on an accelerator.
    """

    _WHAT = ("initial state", "model output", "state", "output")  # output: a path sampler's
    _NONE = torch.iinfo(torch.int64).max

    def __init__(self, mode: str, ts: torch.Tensor, x=None):
        if mode not in FINITE_CHECKS:
            raise ValueError(f"check_finite must be one of {FINITE_CHECKS}, got {mode!r}")
        if mode == "auto":  # a check costs no stall where the state lives on the host
            on_host = getattr(getattr(x, "device", None), "type", "cpu") == "cpu"
            mode = "step" if on_host else "end"
        self.mode, self.ts = mode, ts
        self._first_bad = None

    def check(self, value, step_index: int, what: str) -> None:
        """Check ``value`` (``what`` of :data:`_WHAT`) at step ``step_index``."""
        if self.mode == "step" and not all_finite(value):
            raise self._error(step_index, what)
        if self.mode == "end":
            flag = finite_flag(value)
            code = len(self._WHAT) * step_index + self._WHAT.index(what)  # chronological
            bad_code = torch.where(flag, self._NONE, code)
            self._first_bad = bad_code if self._first_bad is None else torch.minimum(
                self._first_bad, bad_code)

    def finish(self) -> None:
        """With ``"end"``: one host sync; raise naming the first bad check."""
        if self._first_bad is not None and int(self._first_bad) != self._NONE:
            step_index, what = divmod(int(self._first_bad), len(self._WHAT))
            raise self._error(step_index, self._WHAT[what])

    def _error(self, step_index: int, what: str) -> Exception:
        if what == "initial state":
            return ValueError("initial x contains NaN or Inf")
        if what == "model output":
            where = f"t = {float(self.ts[step_index]):.6g}"
            return NonFiniteError(f"model returned NaN/Inf at step {step_index} ({where})")
        if what == "output":
            return NonFiniteError(
                f"its output is NaN/Inf (t = {float(self.ts[0]):.6g} → {float(self.ts[-1]):.6g}; "
                "a peer's steps run inside its library, so the first bad step is not known)")
        where = f"t = {float(self.ts[step_index]):.6g} → {float(self.ts[step_index + 1]):.6g}"
        return NonFiniteError(f"the state became NaN/Inf at step {step_index} ({where})")


class StepContext:
    """The model, the schedule's numeric twin, the noise source and the step's position.

    ``denoise`` counts evaluations and checks each output's type, shape and finiteness;
    ``score``/``eps``/``pf_drift`` convert through :mod:`sdebench.theory.parameterisation`.
    ``at(t)`` gives the schedule's coefficients at t: read from a table over the grid ``ts``
    (:mod:`sdebench.solvers.coefficients`) when t is the t_cur or t_next that
    :meth:`start_step` handed out, evaluated at t otherwise.
    """

    def __init__(self, model: Denoiser, schedule: Schedule, noise, steps: int,
                 monitor: FiniteMonitor, final_sigma_is_zero: bool = False,
                 ts: torch.Tensor | None = None):
        self.model = model
        self.schedule = schedule.numeric
        self.noise = noise
        self.steps = steps
        self.monitor = monitor
        self.final_sigma_is_zero = final_sigma_is_zero
        self.step_index = 0
        self.nfe = 0
        self._grid = GridCoefficients(self.schedule, ts)
        self._t_cur = self._t_next = None

    def start_step(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_cur, t_next) = (ts[index], ts[index + 1]) for step ``index``; :meth:`at` knows
        these two tensors (by identity, so no time is compared on the host)."""
        self.step_index = index
        self._t_cur, self._t_next = self._grid.ts[index], self._grid.ts[index + 1]
        return self._t_cur, self._t_next

    def at(self, t) -> Coefficients:
        """The schedule's coefficients at ``t`` (:class:`~sdebench.solvers.coefficients.Coefficients`)."""
        index = self.step_index if t is self._t_cur else \
            self.step_index + 1 if t is self._t_next else None
        return self._grid.at(t, index)

    @property
    def to_zero_sigma(self) -> bool:
        """Whether this step ends where σ = 0 (the grid's last point, when σ(t_min) = 0)."""
        return self.final_sigma_is_zero and self.step_index == self.steps - 1

    def denoise(self, x, t: torch.Tensor):
        """x̂₀ = D(x, t); raises naming the step if the output is not a tensor shaped like x or
        (per the monitor's mode) not finite."""
        self.nfe += 1
        denoised = self.model(x, t)
        if isinstance(x, torch.Tensor) and not isinstance(denoised, torch.Tensor):
            raise TypeError(f"the model must return a torch.Tensor shaped like x, got "
                            f"{type(denoised).__module__}.{type(denoised).__name__} at step "
                            f"{self.step_index}")
        if getattr(denoised, "shape", None) != x.shape:
            raise ValueError(
                f"model returned shape {tuple(getattr(denoised, 'shape', ()))} for input shape "
                f"{tuple(x.shape)} at step {self.step_index}"
            )
        self.monitor.check(denoised, self.step_index, "model output")
        return denoised

    def score_coefficients(self, t):
        """(c_x, c_D) with ∇log p_t = c_x x + c_D x̂₀ = −x/(s²σ²) + x̂₀/(sσ²): steps that collect
        their update as a x + b x̂₀ (+ c z) touch each tensor once."""
        return self.at(t).score_coefficients

    def score(self, x, denoised, t):
        """∇log p_t = (s x̂₀ − x)/(s²σ²) (Tweedie; theory/claims/tweedie.py), as c_x x + c_D x̂₀
        in two passes (a scaled copy and an axpy: five state reads and writes, not seven)."""
        c_x, c_denoised = self.score_coefficients(t)
        return axpy(c_x * x, c_denoised, denoised)

    def eps(self, x, denoised, t):
        """ε̂ = (x − s x̂₀)/(sσ), as c_x x + c_D x̂₀ in two passes (as :meth:`score`)."""
        c_x, c_denoised = self.at(t).eps_coefficients
        return axpy(c_x * x, c_denoised, denoised)

    def pf_drift(self, x, t):
        """Probability-flow drift f x − ½ g² ∇log p_t (Song et al. 2021, eq. 13).

        Fused: with ∇log p_t = c_x x + c_D x̂₀ it is (f − ½g² c_x) x − ½g² c_D x̂₀, two tensor
        passes instead of six, which matters where the model is cheap (the diagonal problem of
        experiments/speed.py); tests/test_solvers.py checks it against the paper form. The
        coefficients stay finite at a pure-noise end (:meth:`NumericSchedule.pf_coefficients`)."""
        a_x, a_denoised = self.at(t).pf_coefficients
        return axpy(a_x * x, a_denoised, self.denoise(x, t))

    def normal(self, t_cur, t_next, like, channel: int = 0):
        """A standard normal draw tied to the step [t_cur, t_next] (ΔW/√|Δt| of the noise source)."""
        return self.noise.normal(t_cur, t_next, like, channel)

    def increment(self, t_cur, t_next, like, channel: int = 0):
        """The Brownian increment W(t_next) − W(t_cur) of the noise source."""
        return self.noise.increment(t_cur, t_next, like, channel)
