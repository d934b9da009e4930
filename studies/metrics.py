"""Metrics: small registered functions of one study unit, chosen by what the problem answers.

A metric is ``fn(run) -> Measurement`` where ``run`` (:class:`UnitRun`) gives lazy, cached access
to everything a unit can measure — the timed batch run, the exact output law, exact samples,
pathwise runs — so each is computed once however many metrics use it. Registration states

* ``requires``: the problem capabilities it needs (:mod:`sdebench.problems.protocol`);
* ``order``: which declared order of the solver its error follows — ``"order"`` (the output
  law's order), ``"strong_order"`` (pathwise), or None for a diagnostic that is not an error
  (then it is recorded and drawn, never fitted); a metric with ``"strong_order"`` is computed
  only for solvers that declare one;
* ``monte_carlo``: the metric estimates from samples what the exact output law gives without
  noise (sample NLL, sliced W₂): by default it is skipped on problems with an exact law;
* ``reference_based``: it measures against a reference solve, not the truth
  (:mod:`sdebench.studies.reference`): by default computed only on problems with neither an
  exact law nor exact samples (a user's network);
* ``samplers``: ``"all"``, or ``"deterministic"`` / ``"stochastic"`` for a metric that applies
  to ODE or SDE samplers only (e.g. the error of a deterministic map);
* ``condition``: an optional predicate ``(problem, solver) -> bool`` for anything else a metric
  needs (e.g. a peer sampler with an sdebench twin, :mod:`sdebench.peers.agreement`);
* ``description``: one line for reports.

A :class:`Measurement` carries its value, its Monte Carlo standard error (NaN when exact), the
floor below which the value is not discretisation error (round-off, Monte Carlo or the reference
solve's own error; NaN when none), for diagnostics a reference value (e.g. the same statistic of
exact samples), and ``against``: what the value was measured against (``exact`` or the
reference solve, e.g. ``rk4@1024``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from sdebench.problems.law import ExactLawNoise
from sdebench.problems.protocol import EXACT_LAW, LOG_DENSITY, PATHS, SAMPLES
from sdebench.registry import Registry
from sdebench.seeding import generator
from sdebench.solvers.grids import make_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import BrownianGrid, GaussianIncrements
from sdebench.solvers.solver import unit_roundoff
from sdebench.state import mean_square_norm

ROUNDOFF_SAFETY = 10
"""λ of the round-off floors: λ · u · √NFE · scale is the a-priori floor of Higham & Mary 2019
(SIAM J. Sci. Comput. 41(5), Thm. 2.4: n independent mean-zero relative errors of size u
accumulate as √n u, and the bound λ√n u holds with probability ≥ 1 − 2 exp(−λ²(1 − u)²/2)),
still used where a peer's probes are checked (:mod:`sdebench.peers.base`); a unit's own floor
is λ times its measured round-off (:meth:`UnitRun.roundoff_floor`)."""

MEASURED_ROUNDOFF = "measured round-off"
"""``floor_kind`` of a floor from :meth:`UnitRun.roundoff_floor`."""

SLICING_DIRECTIONS = 64


@dataclass(frozen=True)
class Measurement:
    value: float
    stderr: float = math.nan
    floor: float = math.nan
    floor_kind: str = ""
    reference: float = math.nan
    against: str = "exact"


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable
    requires: frozenset
    order: str | None
    description: str
    monte_carlo: bool = False
    reference_based: bool = False
    samplers: str = "all"
    condition: Callable | None = None

    def __call__(self, run: UnitRun) -> Measurement:
        return self.fn(run)

    def applies_to(self, problem, solver) -> bool:
        """Whether the metric can be computed for this problem and solver."""
        if not self.requires <= problem.capabilities:
            return False
        if self.samplers != "all" and solver.stochastic != (self.samplers == "stochastic"):
            return False
        if self.condition is not None and not self.condition(problem, solver):
            return False
        return self.order != "strong_order" or getattr(solver, "strong_order", None) is not None

    def default_for(self, problem, solver) -> bool:
        """Whether a study computes it when no metrics are named."""
        if self.reference_based:
            return self.applies_to(problem, solver) and not (
                {EXACT_LAW, SAMPLES} & problem.capabilities)
        return self.applies_to(problem, solver) and not (
            self.monte_carlo and EXACT_LAW in problem.capabilities)


METRICS = Registry("metric")


def register_metric(name: str, *, requires=(), order: str | None = None, description: str = "",
                    monte_carlo: bool = False, reference_based: bool = False,
                    samplers: str = "all", condition: Callable | None = None):
    """Decorator: register ``fn(run) -> Measurement`` as metric ``name`` (see module docstring)."""
    if order not in (None, "order", "strong_order"):
        raise ValueError(f"metric {name!r}: order must be None, 'order' or 'strong_order', "
                         f"got {order!r}")
    if samplers not in ("all", "deterministic", "stochastic"):
        raise ValueError(f"metric {name!r}: samplers must be 'all', 'deterministic' or "
                         f"'stochastic', got {samplers!r}")

    def add(fn: Callable) -> Callable:
        METRICS.register(name, Metric(name, fn, frozenset(requires), order,
                                      description or (fn.__doc__ or "").strip().split("\n")[0],
                                      monte_carlo, reference_based, samplers, condition))
        return fn

    return add


def get_metric(name: str) -> Metric:
    metric = METRICS.factory(name)
    if not isinstance(metric, Metric):
        raise TypeError(f"metric {name!r} must be registered with register_metric, got "
                        f"{type(metric).__name__}")
    return metric


@dataclass
class BatchRun:
    """A timed run of ``batch`` samples from exact p_{t_max} draws: ``wall_time`` is the median
    of ``timings`` (one per repetition; the output of the first is kept)."""

    x_start: torch.Tensor
    x: torch.Tensor
    nfe: int
    timings: list[float]

    @property
    def wall_time(self) -> float:
        ordered = sorted(self.timings)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def output_time(solver, schedule, ts: torch.Tensor) -> torch.Tensor:
    """The time at which ``solver``'s output lies on the grid ``ts``: ts[-1], unless the solver
    declares another (``output_time(schedule, ts)``: a peer that ends at the data, e.g. diffusers'
    flow-matching schedulers, :meth:`sdebench.peers.diffusers.DiffusersSampler.output_time`).
    The metrics judge the output against p at that time."""
    declared = getattr(solver, "output_time", None)
    return ts[-1] if declared is None else declared(schedule, ts)


class UnitRun:
    """One (schedule, problem, sampler, steps) unit: what its metrics may use, computed lazily.

    Random streams are keyed by purpose only (:func:`sdebench.seeding.generator`), so every
    sampler and step count of a study starts from the same points and sees the same exact
    samples (common random numbers: differences between units are not sampling noise).
    """

    def __init__(self, problem, solver, steps: int, *, grid: str, batch: int, seed: int,
                 strong_reference_factor: int = 8, path_times: torch.Tensor | None = None,
                 timing_repeats: int = 1, reference: str = ""):
        self.problem, self.solver, self.steps = problem, solver, steps
        self.grid, self.batch, self.seed = grid, batch, seed
        self.strong_reference_factor = strong_reference_factor
        self.path_times = path_times
        self.timing_repeats = timing_repeats
        self.reference = reference
        self.ts = make_grid(grid, problem.schedule, steps, device=problem.device)
        self.t_end = output_time(solver, problem.schedule, self.ts)

    def generator(self, purpose: str) -> torch.Generator:
        return generator(self.seed, purpose, device=self.problem.device)

    def timed_sample(self, x, ts, noise) -> tuple[torch.Tensor, int, float]:
        synchronize = torch.cuda.synchronize if x.device.type == "cuda" else lambda: None
        synchronize()
        start = time.perf_counter()
        result = sample(self.solver, self.problem.denoiser, self.problem.schedule, x, ts,
                        noise=noise, progress=self.steps >= 10**5)
        synchronize()
        return result.x, result.nfe, time.perf_counter() - start

    @cached_property
    def start(self) -> torch.Tensor:
        """``batch`` exact samples of p_{t_max}."""
        return self.problem.sample_marginal(self.ts[0], self.batch, self.generator("start"))

    @cached_property
    def batch_run(self) -> BatchRun:
        """The batch run, timed ``timing_repeats`` times with the same noise (a study warms the
        process up before its first unit, so no timing includes first-call costs)."""
        x, nfe, wall = self.timed_sample(self.start, self.ts, GaussianIncrements(self.seed))
        timings = [wall] + [self.timed_sample(self.start, self.ts, GaussianIncrements(self.seed))[2]
                            for _ in range(self.timing_repeats - 1)]
        return BatchRun(self.start, x, nfe, timings)

    @cached_property
    def law(self):
        """The exact law of the output (problems with ``"exact_law"``)."""
        return sample(self.solver, self.problem.denoiser, self.problem.schedule,
                      self.problem.marginal_law(self.ts[0]), self.ts, noise=ExactLawNoise()).x

    def require_output_at_grid_end(self, metric: str) -> None:
        """Refuse ``metric``, whose reference ends at t_min, for a sampler whose output lies
        elsewhere (:func:`output_time`), naming the metrics that can judge it."""
        if float(self.t_end) != float(self.ts[-1]):
            raise ValueError(f"{metric}: its reference ends at t = {float(self.ts[-1]):g}, but "
                             f"{getattr(self.solver, 'name', self.solver)}'s output lies at t = "
                             f"{float(self.t_end):g}; judge it on a problem with an exact law or "
                             "exact samples there (w2, sliced_w2: gaussian, gmm)")

    def exact_samples(self, purpose: str = "exact") -> torch.Tensor:
        """``batch`` exact samples of p at the output's time :attr:`t_end` (t_min, but for a
        sampler that ends elsewhere) from the stream ``purpose``."""
        return self.problem.sample_marginal(self.t_end, self.batch, self.generator(purpose))

    @cached_property
    def measured_roundoff(self) -> float:
        """√E‖x̃ − x‖² between the unit's output x and the same unit re-run with one rounding
        error at every place it rounds: every stored number of the start, of each state after a
        step and of each model input and output moved by one ulp (relative 2u, u of the
        precision the solver computes in) up or down at random (seeded) — Monte Carlo
        arithmetic (Parker, Pierce & Eggert 2000, Comput. Sci. Eng. 2(4)). The re-run
        propagates these errors through the unit's own coefficients, steps and model, so
        cancellation, growth of the state and contraction by the flow are in the number (a
        path sampler's own states are out of reach: only its start and model calls are moved).

        On the exact output law (problems with ``"exact_law"``) the distance is that of the law
        objects, E‖ΔX‖² = ‖Δmean‖² + Σ‖Δcoefficient‖²; otherwise that of the batch run and its
        re-run from the same start points with the same noise (one more batch run). A peer's law
        is probed (:func:`sdebench.peers.base.probe_law`): the model sees a batch of probe rows,
        and each coordinate's move is then shared by the rows of one call — a diagonal, hence
        affine, perturbation that the probe represents exactly (moved row by row, the rows stop
        being one affine image of the law, and the probe's check refused it)."""
        generator = self.generator("round-off")
        relative = 2 * unit_roundoff(self.solver, self.problem.dtype)
        on_law = EXACT_LAW in self.problem.capabilities

        def rounded(x):
            numbers = _numbers(x)
            probe_rows = on_law and isinstance(x, torch.Tensor)
            shape = numbers.shape[1:] if probe_rows else numbers.shape
            sign = torch.randint(0, 2, shape, generator=generator, device=numbers.device)
            moved = numbers * (1 + relative * (2 * sign - 1).to(numbers.dtype))
            return moved if isinstance(x, torch.Tensor) else type(x)(moved)

        def round_state(i, t_cur, t_next, x):
            _numbers(x).copy_(_numbers(rounded(x)))

        def rounded_model(x, t):
            return rounded(self.problem.denoiser(rounded(x), t))

        if on_law:
            start, exact, noise = self.problem.marginal_law(self.ts[0]), self.law, ExactLawNoise()
        else:
            start, exact, noise = self.start, self.batch_run.x, GaussianIncrements(self.seed)
        perturbed = sample(self.solver, rounded_model, self.problem.schedule, rounded(start),
                           self.ts, noise=noise, callback=round_state).x
        return float(mean_square_norm(perturbed - exact)) ** 0.5

    def roundoff_floor(self) -> float:
        """:data:`ROUNDOFF_SAFETY` × :attr:`measured_roundoff`: the output's round-off measured
        for this unit, not assumed (``floor_kind`` :data:`MEASURED_ROUNDOFF`). The a-priori
        λ u √NFE ‖x(t_min)‖ fell below the actual round-off (against a 50-digit mpmath run of the
        same steps) where the output or the states on the way are larger than p_{t_min} — Heun
        on edm and Euler on ve at 4 steps, by 4.4× and 5× — and lay 20–60× above it from 16
        steps on. Euler, Heun and RK4 on the 5 catalogue schedules at 4–1024 steps: the actual
        round-off is at most 2.4× the measured one (tests/test_roundoff_floor.py), so λ = 10
        bounds it with a factor 4 to spare."""
        return ROUNDOFF_SAFETY * self.measured_roundoff


def _numbers(x) -> torch.Tensor:
    """The tensor holding a state's numbers: the tensor itself, or a law object's ``data``."""
    return x if isinstance(x, torch.Tensor) else x.data


@register_metric("w2", requires=(EXACT_LAW,), order="order",
                 description="W₂ between the exact output law and p_t_min")
def w2(run: UnitRun) -> Measurement:
    """W₂(output law, p_{t_min}) from the exact output law (no Monte Carlo noise)."""
    return Measurement(float(run.problem.w2(run.law, run.t_end)), floor=run.roundoff_floor(),
                       floor_kind=MEASURED_ROUNDOFF)


@register_metric("kl", requires=(EXACT_LAW,),
                 description="KL(output law ‖ p_t_min), recorded, not fitted")
def kl(run: UnitRun) -> Measurement:
    """KL(output law ‖ p_{t_min}) from the exact output law. Not fitted: KL ≈ ½(δ/std)² is
    quadratic in the error, its order is twice the declared one only asymptotically."""
    return Measurement(float(run.problem.kl(run.law, run.t_end)))


@register_metric("strong_error", requires=(PATHS,), order="strong_order",
                 description="E‖x_N − x_ref‖ on shared Brownian paths")
def strong_error(run: UnitRun) -> Measurement:
    """E‖x_N − x_ref‖ over ``batch`` paths, x_ref from the same sampler on a grid
    ``strong_reference_factor`` times finer, driven by the same Brownian path
    (:class:`~sdebench.solvers.noise.BrownianGrid` on ``run.path_times``, by default the union
    of both grids; a study passes the union of all its grids, so every step count sees the same
    path); its standard error is the sample SD/√batch."""
    ts = run.ts
    fine_ts = make_grid(run.grid, run.problem.schedule, run.steps * run.strong_reference_factor,
                        device=ts.device)
    times = run.path_times if run.path_times is not None else torch.cat([ts, fine_ts]).cpu()
    path = BrownianGrid(times, seed=run.seed)
    coarse, _, _ = run.timed_sample(run.start, ts, path)
    reference, _, _ = run.timed_sample(run.start, fine_ts, path)
    errors = (coarse - reference).flatten(1).norm(dim=1)
    return Measurement(float(errors.mean()), float(errors.std() / math.sqrt(errors.numel())),
                       floor=run.roundoff_floor(), floor_kind=MEASURED_ROUNDOFF,
                       against=f"same sampler, {run.strong_reference_factor}x steps, same "
                               "Brownian path")


@register_metric("nll", requires=(LOG_DENSITY, SAMPLES), monte_carlo=True,
                 description="mean −log p_t_min of the output (reference: of exact samples)")
def nll(run: UnitRun) -> Measurement:
    """Mean −log p_{t_min} of the output samples, standard error SD/√batch; the reference is the
    same for exact samples (the value it converges to)."""
    t_min = run.t_end
    output = -run.problem.log_density(run.batch_run.x, t_min)
    exact = -run.problem.log_density(run.exact_samples(), t_min)
    root_n = math.sqrt(run.batch)
    return Measurement(float(output.mean()), float(output.std() / root_n),
                       reference=float(exact.mean()), against="exact density")


def slicing_directions(run: UnitRun) -> torch.Tensor:
    """:data:`SLICING_DIRECTIONS` unit vectors (columns), float64 on the CPU, from the study's
    seed: every unit of a study projects on the same directions."""
    directions = torch.randn(run.problem.dim, SLICING_DIRECTIONS, dtype=torch.float64,
                             generator=generator(run.seed, "slicing"))
    return directions / directions.norm(dim=0)


def sliced_w2_distance(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """Sliced W₂ between equal-size sample sets: the root mean over directions of the 1-D W₂²
    of the sorted projections (Rabin et al. 2011)."""
    pa, _ = torch.sort(a.flatten(1) @ directions, dim=0)
    pb, _ = torch.sort(b.flatten(1) @ directions, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())


@register_metric("sliced_w2", requires=(SAMPLES,), order="order", monte_carlo=True,
                 description="sliced W₂ to exact samples; floor: between two exact sample sets")
def sliced_w2(run: UnitRun) -> Measurement:
    """Sliced W₂ (64 random directions) between the output and ``batch`` exact samples of
    p_{t_min}; its floor is the same distance between two independent exact sample sets, the
    Monte Carlo level below which differences are sampling noise."""
    directions = slicing_directions(run).to(run.batch_run.x)
    exact = run.exact_samples()
    floor = sliced_w2_distance(run.exact_samples("exact_2"), exact, directions)
    return Measurement(sliced_w2_distance(run.batch_run.x, exact, directions), floor=floor,
                       floor_kind="Monte Carlo", against="exact samples")
