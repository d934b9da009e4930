"""Agreement of a peer sampler with sdebench's own implementation of the same method.

Registered as the metric ``agreement`` for peer samplers that name a ``twin``: on a problem with
an exact law, the largest difference of the two exact output laws (per coordinate, of the means
and of the standard deviations; stochastic samplers included, since both laws are exact); on
other problems, for deterministic samplers, the root-mean-square difference of the two outputs
from the same start points (in the norm of the round-off floor's scale). The twin runs on the
grid the peer steps on (``grid_sigmas``), so grids never explain a difference. Where conventions
match, it is round-off (its floor); where they differ, the peer's ``convention`` names the
difference.
"""

from __future__ import annotations

from sdebench.problems.law import ExactLawNoise
from sdebench.problems.protocol import EXACT_LAW
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.state import mean_square_norm
from sdebench.studies.metrics import MEASURED_ROUNDOFF, Measurement, UnitRun, register_metric


def has_twin(problem, solver) -> bool:
    """A peer sampler with a twin, on a problem where the two can be compared exactly."""
    return bool(getattr(solver, "twin", "")) and (
        EXACT_LAW in problem.capabilities or not solver.stochastic)


def peer_grid(run: UnitRun):
    """The grid the peer steps on, in the study's time t: its ``grid_times`` where it declares
    them (a flow scheduler's σ_f grid, without its last point where that lies at σ = 0 below
    the schedule's range: :func:`twin_output` takes that step), else its ``grid_sigmas``
    mapped by σ⁻¹ with the ends kept at the study's, which it starts and ends at up to its
    float rounding; the study's grid for a peer that steps on it or ends at σ = 0."""
    times = getattr(run.solver, "grid_times", lambda schedule, ts: None)(
        run.problem.schedule, run.ts)
    if times is not None:
        t_min = float(run.problem.schedule.t_min)
        times = times[:-1] if float(times[-1]) < t_min else times
        if float(times[-1]) < t_min:
            raise ValueError(f"agreement: {run.solver.name} steps down to t = {float(times[-1]):g}, "
                             f"below t_min = {t_min:g} of {run.problem.schedule.name!r}, where its "
                             "twin cannot follow; give it the schedule's shift (e.g. shift=3.0 on "
                             "rf:shift=3), whose σ_f grid ends inside the schedule's range")
        return times
    sigmas = getattr(run.solver, "grid_sigmas", lambda schedule, ts: None)(
        run.problem.schedule, run.ts)
    if sigmas is None:
        return run.ts
    ts = run.problem.schedule.numeric.sigma_inv(sigmas.to(run.ts))
    ts[0], ts[-1] = run.ts[0], run.ts[-1]
    return ts


def twin_output(run: UnitRun, start, noise):
    """The twin's output from ``start`` (a batch or the start law) on :func:`peer_grid`; where
    the peer's output lies at σ = 0 (:attr:`UnitRun.t_end` before the grid's end), its last
    step is the jump to the data, x ← s(t_end) D(x; t) — Euler's step to σ = 0 in every form
    (Karras et al. 2022, Alg. 1, line 6) and the peer's own last step."""
    twin, problem = get_solver(run.solver.twin), run.problem
    ts = peer_grid(run)
    own = sample(twin, problem.denoiser, problem.schedule, start, ts, noise=noise).x
    if float(run.t_end) < float(ts[-1]):
        own = problem.denoiser(own, ts[-1]) * problem.schedule.numeric.s(run.t_end)
    return own


@register_metric("agreement", condition=has_twin,
                 description="difference to sdebench's own implementation (its twin): largest over "
                 "the exact laws, or root-mean-square over the outputs")
def agreement(run: UnitRun) -> Measurement:
    """max |peer − twin| over coordinates of the exact output laws' means and standard
    deviations, or (no exact law) √E‖peer − twin‖² of the outputs from the same start points."""
    problem = run.problem
    if EXACT_LAW in problem.capabilities:
        own = twin_output(run, problem.marginal_law(run.ts[0]), ExactLawNoise())
        difference = max(float((run.law.mean - own.mean).abs().max()),
                         float((run.law.variance.sqrt() - own.variance.sqrt()).abs().max()))
    else:
        own = twin_output(run, run.start, GaussianIncrements(run.seed))
        # √E‖peer − twin‖² over the batch, in the norm of the floor's scale √E‖x‖²: the batch's
        # largest coordinate against that average scale read round-off as a difference (gmm)
        difference = float(mean_square_norm(run.batch_run.x - own)) ** 0.5
    return Measurement(difference, floor=run.roundoff_floor(), floor_kind=MEASURED_ROUNDOFF,
                       against=f"sdebench {run.solver.twin}")
