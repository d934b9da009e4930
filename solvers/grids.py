"""Time grids: plain decreasing float64 tensors from t_max to t_min, built apart from solvers.

Every grid has ``steps + 1`` points, starts at the schedule's t_max and ends at its t_min.
"""

from __future__ import annotations

import math

import torch

from sdebench.registry import Registry, Spec, check_number
from sdebench.theory.schedule import Schedule


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def _ends(schedule: Schedule, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    t_max = torch.tensor(float(schedule.t_max), dtype=dtype, device=device)
    t_min = torch.tensor(float(schedule.t_min), dtype=dtype, device=device)
    return t_max, t_min


def uniform_t_grid(schedule: Schedule, steps: int, *, dtype=torch.float64, device="cpu"):
    """t_i = t_max + i (t_min − t_max)/N (Song et al. 2021)."""
    steps = _check_steps(steps)
    t_max, t_min = _ends(schedule, dtype, device)
    return torch.linspace(float(t_max), float(t_min), steps + 1, dtype=dtype, device=device)


def quadratic_grid(schedule: Schedule, steps: int, *, dtype=torch.float64, device="cpu"):
    """t_i = t_min + (t_max − t_min)(1 − i/N)²: denser near t_min (Song, Meng & Ermon 2021, App. D.2)."""
    steps = _check_steps(steps)
    t_max, t_min = _ends(schedule, dtype, device)
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=dtype, device=device)
    grid = t_min + (t_max - t_min) * u**2
    grid[0], grid[-1] = t_max, t_min
    return grid


def edm_rho_grid(schedule: Schedule, steps: int, *, rho: float = 7.0, dtype=torch.float64,
                 device="cpu"):
    """σ_i = (σ_max^{1/ρ} + i/N (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, t_i = σ⁻¹(σ_i)
    (Karras et al. 2022, eq. 5, ρ = 7)."""
    steps = _check_steps(steps)
    rho = check_number("rho", rho, low=0, low_open=True)
    numeric = schedule.numeric
    t_max, t_min = _ends(schedule, dtype, device)
    sigma_max, sigma_min = numeric.sigma(t_max), numeric.sigma(t_min)
    u = torch.linspace(0.0, 1.0, steps + 1, dtype=dtype, device=device)
    sigmas = (sigma_max ** (1 / rho) + u * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    grid = numeric.sigma_inv(sigmas)
    grid[0], grid[-1] = t_max, t_min
    return grid


def log_snr_grid(schedule: Schedule, steps: int, *, dtype=torch.float64, device="cpu"):
    """Uniform in λ = −log σ (Lu et al. 2022, DPM-Solver's 'logSNR' spacing). λ must be finite at
    both ends: a schedule with σ(t_min) = 0 (``edm:sigma_min=0``) has λ = +∞ there, so no grid is
    uniform in it; the ``edm`` and ``uniform`` grids reach σ = 0."""
    steps = _check_steps(steps)
    numeric = schedule.numeric
    t_max, t_min = _ends(schedule, dtype, device)
    ends = [float(numeric.half_log_snr(t)) for t in (t_max, t_min)]
    if not all(map(math.isfinite, ends)):
        sigmas = [float(numeric.sigma(t)) for t in (t_max, t_min)]
        raise ValueError(
            f"needs a finite log-SNR λ = -log sigma at both ends; schedule {schedule.name!r} has "
            f"sigma = {sigmas[0]:g} at t_max and {sigmas[1]:g} at t_min (λ = {ends[0]:g}, "
            f"{ends[1]:g}): use --grid edm or --grid uniform, or a schedule with sigma(t_min) > 0")
    lam = torch.linspace(*ends, steps + 1, dtype=dtype, device=device)
    grid = numeric.t_of_half_log_snr(lam)
    grid[0], grid[-1] = t_max, t_min
    return grid


def _half_log_snr_ends(schedule: Schedule) -> tuple[float, float]:
    """λ = −log σ at t_max and at t_min, in float64 (−∞ at a pure-noise start, +∞ at σ = 0)."""
    numeric = schedule.numeric
    return tuple(float(numeric.half_log_snr(torch.tensor(float(t), dtype=torch.float64)))
                 for t in (schedule.t_max, schedule.t_min))


def noise_graded_grid(schedule: Schedule, steps: int, *, a: float = 0.5, dtype=torch.float64,
                      device="cpu"):
    """Uniform in φ(λ) = softplus(aλ)/a = log(1 + e^{aλ})/a: uniform in λ where λ ≫ 0 (φ ≈ λ),
    uniform in e^{aλ} as λ → −∞ (φ ≈ e^{aλ}/a), so it starts at a pure-noise end (λ = −∞,
    φ = 0) with λ-steps that grow towards the noise.

    Why (derivation in :mod:`sdebench.theory.claims.pure_noise_grids`): near pure noise
    x̂₀ = E[x₀ | x] varies like e^{λ} in λ and enters the state with weight s ≈ e^{λ}, so a
    λ-step method of order p makes a local error ~ e^{2λ} h^{p+1} there. On a grid uniform in
    e^{aλ}, h ≈ e^{−aλ}/(aN) and the errors of the steps near the noise end sum to
    N^{−min(p, 2/a)} (times log N at p = 2/a): a grid uniform in t on rf or vp0snr has a = 1
    (1 − t ∝ e^{λ}), so DPM-Solver++(2M) converges like N^{−2} log N and third-order λ-methods
    like N^{−2}; a = 1/2 keeps every order below 4. On rf, t ≈ 1 − (aφ)^{1/a} near the noise is a
    smooth map of φ, so samplers stepping in t keep their order too."""
    steps = _check_steps(steps)
    a = check_number("a", a, low=0, low_open=True)
    numeric = schedule.numeric
    t_max, t_min = _ends(schedule, dtype, device)
    ends = _half_log_snr_ends(schedule)
    if math.isinf(ends[1]):
        sigma = float(numeric.sigma(t_min))
        raise ValueError(
            f"needs a finite log-SNR λ = -log sigma at t_min; schedule {schedule.name!r} has "
            f"sigma = {sigma:g} there: use --grid edm or --grid uniform, or a schedule with "
            "sigma(t_min) > 0")
    phi_ends = [math.log1p(math.exp(a * lam)) / a if lam < 30 / a else lam for lam in ends]
    phi = torch.linspace(*phi_ends, steps + 1, dtype=torch.float64, device=device)
    # λ = log(e^{aφ} − 1)/a = φ + log(−expm1(−aφ))/a: no overflow where φ is large
    lam = phi + torch.log(-torch.expm1(-a * phi)) / a
    grid = numeric.t_of_half_log_snr(lam).to(dtype)
    grid[0], grid[-1] = t_max, t_min
    return grid


def auto_grid(schedule: Schedule, steps: int, *, dtype=torch.float64, device="cpu"):
    """``logsnr`` where λ is finite at both ends; ``graded`` (:func:`noise_graded_grid`) on a
    schedule that starts at pure noise (rf, vp0snr: λ = −∞ at t_max), where no grid is uniform
    in λ and a grid uniform in t costs λ-step methods their order; ``uniform`` in t on a schedule
    that ends at σ = 0 (λ = +∞ at t_min)."""
    start, end = _half_log_snr_ends(schedule)
    if math.isinf(end):
        grid = uniform_t_grid
    elif math.isinf(start):
        grid = noise_graded_grid
    else:
        grid = log_snr_grid
    return grid(schedule, steps, dtype=dtype, device=device)


GRIDS = Registry("grid")
"""Grid families: name → ``fn(schedule, steps, *, dtype, device, **params)``."""
GRIDS.register("uniform", uniform_t_grid)
GRIDS.register("quadratic", quadratic_grid)
GRIDS.register("edm", edm_rho_grid)
GRIDS.register("logsnr", log_snr_grid)
GRIDS.register("graded", noise_graded_grid)
GRIDS.register("auto", auto_grid)
register_grid = GRIDS.register


def make_grid(spec: str | Spec, schedule: Schedule, steps: int, *, dtype=torch.float64,
              device="cpu") -> torch.Tensor:
    """The grid a spec names (``"logsnr"``, ``"edm:rho=5"``, ``module:attribute``)."""
    return GRIDS.create(spec, schedule=schedule, steps=steps, dtype=dtype, device=device)


def check_grid(ts: torch.Tensor, schedule: Schedule) -> None:
    """Raise ValueError unless ``ts`` is a 1-D, strictly decreasing floating grid inside the
    schedule's [t_min, t_max]; nothing is clipped. The slack is 4 units of the grid dtype's
    rounding (a float32 grid cannot hold t_min = 10⁻³ exactly)."""
    if not isinstance(ts, torch.Tensor) or ts.ndim != 1 or not ts.is_floating_point():
        raise ValueError(f"time grid must be a 1-D floating tensor, got {type(ts).__name__}"
                         f" {getattr(ts, 'shape', '')}")
    if ts.numel() < 2:
        raise ValueError(f"time grid needs at least 2 points (1 step), got {ts.numel()}")
    if not torch.isfinite(ts).all():
        raise ValueError(f"time grid has non-finite values: {ts.tolist()}")
    increments = ts[1:] - ts[:-1]
    if not (increments < 0).all():
        bad = int(torch.nonzero(increments >= 0)[0])
        raise ValueError(
            "time grid must be strictly decreasing (from t_max to t_min); "
            f"ts[{bad}] = {ts[bad].item()} <= ts[{bad + 1}] = {ts[bad + 1].item()}"
        )
    t_min, t_max = float(schedule.t_min), float(schedule.t_max)
    slack = 4 * torch.finfo(ts.dtype).eps * max(abs(t_min), abs(t_max))
    if ts.max().item() > t_max + slack or ts.min().item() < t_min - slack:
        raise ValueError(
            f"time grid [{ts.min().item()}, {ts.max().item()}] leaves the schedule's range "
            f"[{t_min}, {t_max}] of {schedule.name!r}"
        )
