"""Reference-based convergence: errors against a fine reference solve where no exact answer
exists (DiffEqDevTools' convergence tests without an analytic solution, ``test_setup``).

For a deterministic sampler the output is a map of its start point; the error of N steps is
E‖x_N − x_ref‖ over the study's shared start points, with x_ref a high-order solve of the same
probability-flow ODE on a much finer grid of the same family. The reference checks its own
convergence: it is solved at M and M/2 steps, and δ = E‖x_ref(M) − x_ref(M/2)‖ — about
(2^p − 1) ≥ 15 times the error of x_ref(M) itself for an order-p ≥ 4 reference in its asymptotic
regime — is the floor of every measured error: a value above it carries at most ~1/15 of
reference error, a value below it is not counted as discretisation error (the order fit treats
it as an error floor).

Stochastic samplers are measured pathwise by ``strong_error`` (the same sampler on a finer grid of
the same Brownian path) and in law by ``ref_sliced_w2``: the sliced W₂ between the output and
reference samples — the same sampler at the reference's M steps from independent starts and
noise — whose Monte Carlo floor is the same distance between two independent reference sets.
The reference's own weak error (about (N/M)× the measured one, N ≤ M/8) steepens a fitted
first order by at most ~0.07, below the verdict's 0.1 tolerance.
"""

from __future__ import annotations

import json
import math
import weakref
from dataclasses import dataclass

import torch

from sdebench.seeding import derive_seed
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.grids import make_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.studies.metrics import (
    MEASURED_ROUNDOFF,
    Measurement,
    UnitRun,
    register_metric,
    sliced_w2_distance,
    slicing_directions,
)

DEFAULT_REFERENCE = "rk4"
REFERENCE_FACTOR = 8
"""An automatic reference takes M = 8 × the study's largest step count (rounded up to a power
of two, at least 64) steps: for an order-p sampler against an order-4 reference, the reference
error at the largest step count is below 8⁻⁴ ≈ 2.4e-4 of the measured one (same constants)."""


def reference_spec(solver: str, steps: int) -> str:
    return f"{solver}@{steps}"


def parse_reference(text: str) -> tuple[str, int | None]:
    """``solver@steps`` (e.g. ``rk4@2048``) or ``solver`` (steps chosen by the study)."""
    solver, _, steps = text.rpartition("@") if "@" in text else (text, "", "")
    if not solver:
        raise ValueError(f"reference must be 'solver' or 'solver@steps', got {text!r}")
    if not steps:
        return solver, None
    if not steps.isdigit() or int(steps) < 2 or int(steps) % 2:
        raise ValueError(f"reference steps must be an even integer >= 2 (the reference is "
                         f"checked at half of them), got {steps!r} in {text!r}")
    return solver, int(steps)


def resolve_reference(text: str, study_steps) -> str:
    """The reference a study uses: its steps as given, or 8 × the largest step count rounded up
    to a power of two (at least 64)."""
    solver, steps = parse_reference(text)
    reference = get_solver(solver)
    if reference.stochastic:
        raise ValueError(f"reference solver {solver!r} is stochastic; a reference solve must be "
                         "deterministic (e.g. rk4, dpm_solver_3)")
    if reference.order is None:
        raise ValueError(f"reference solver {solver!r} declares no order")
    if steps is None:
        steps = max(64, 2 ** math.ceil(math.log2(REFERENCE_FACTOR * max(study_steps))))
    return reference_spec(solver, steps)


@dataclass(frozen=True)
class ReferenceSolution:
    """x_ref = the reference solver's output from the study's start points at ``steps``, and
    ``check`` = E‖x_ref(steps) − x_ref(steps/2)‖."""

    spec: str
    x: torch.Tensor
    check: float


_SOLVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""problem → {(reference, grid, seed, batch): ReferenceSolution}: one solve per section and
process however many units use it."""


def reference_solution(run: UnitRun) -> ReferenceSolution:
    key = (run.reference, run.grid, run.seed, run.batch)
    solved = _SOLVED.setdefault(run.problem, {})
    if key not in solved:
        name, steps = parse_reference(run.reference)
        solver, problem = get_solver(name), run.problem

        def solve(n):
            ts = make_grid(run.grid, problem.schedule, n, device=problem.device)
            return sample(solver, problem.denoiser, problem.schedule, run.start, ts,
                          progress=n >= 10**4).x

        fine, half = solve(steps), solve(steps // 2)
        check = float((fine - half).flatten(1).norm(dim=1).mean())
        solved[key] = ReferenceSolution(run.reference, fine, check)
    return solved[key]


@register_metric("ref_error", order="order", reference_based=True, samplers="deterministic",
                 description="E‖x_N − x_ref‖ from shared start points; x_ref a fine reference "
                             "solve (floor: its own change from half its steps)")
def ref_error(run: UnitRun) -> Measurement:
    """E‖x_N − x_ref‖ over the ``batch`` shared start points, with floor max(measured round-off,
    δ) where δ = E‖x_ref(M) − x_ref(M/2)‖ (module docstring). No standard error: each start's
    error is a deterministic function of the start, and the same starts serve every step count,
    so their spread is no uncertainty about the error's change with N (read as one, it dropped
    a stiff network's clean dpmpp_2m errors as "within 3 SE of 0"). The only floors are δ and
    round-off."""
    run.require_output_at_grid_end("ref_error")
    reference = reference_solution(run)
    errors = (run.batch_run.x - reference.x).flatten(1).norm(dim=1)
    roundoff = run.roundoff_floor()
    floor, kind = (reference.check, "reference") if reference.check > roundoff \
        else (roundoff, MEASURED_ROUNDOFF)
    _, steps = parse_reference(reference.spec)
    return Measurement(float(errors.mean()),
                       floor=floor, floor_kind=kind,
                       against=f"{reference.spec} (δ vs {steps // 2} steps: "
                               f"{reference.check:.2g})")


def _reference_sets(run: UnitRun) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent sets of ``batch`` outputs of the unit's own sampler at the reference's M
    steps (independent starts and noise), cached per sampler, section and process."""
    solver = run.solver
    parameters = solver.parameters() if hasattr(solver, "parameters") else {}
    key = ("samples", type(solver).__qualname__, json.dumps(parameters, sort_keys=True, default=str),
           run.reference, run.grid, run.seed, run.batch)
    solved = _SOLVED.setdefault(run.problem, {})
    if key not in solved:
        _, steps = parse_reference(run.reference)
        problem = run.problem
        ts = make_grid(run.grid, problem.schedule, steps, device=problem.device)
        sets = []
        for name in ("reference_a", "reference_b"):
            start = problem.sample_marginal(ts[0], run.batch, run.generator(f"{name}_start"))
            noise = GaussianIncrements(derive_seed(run.seed, f"{name}_noise"))
            sets.append(sample(solver, problem.denoiser, problem.schedule, start, ts, noise=noise,
                               progress=steps >= 10**4).x)
        solved[key] = tuple(sets)
    return solved[key]


@register_metric("ref_sliced_w2", order="order", reference_based=True, samplers="stochastic",
                 monte_carlo=True,
                 description="sliced W₂ to the same sampler's samples at the reference's steps; "
                             "floor: between two such sample sets")
def ref_sliced_w2(run: UnitRun) -> Measurement:
    """Sliced W₂ (64 directions) between the output and reference samples of the same sampler
    at the reference's M steps (independent starts and noise); the Monte Carlo floor is the
    same distance between two independent reference sets (module docstring)."""
    run.require_output_at_grid_end("ref_sliced_w2")
    first, second = _reference_sets(run)
    directions = slicing_directions(run).to(first)
    _, steps = parse_reference(run.reference)
    return Measurement(sliced_w2_distance(run.batch_run.x, first, directions),
                       floor=sliced_w2_distance(second, first, directions),
                       floor_kind="Monte Carlo",
                       against=f"same sampler@{steps}, independent starts and noise")


def reference_summary(orders) -> list[str]:
    """One line per reference solve in an order table: the reference and its margin (the
    smallest fitted error over δ, column ``reference_margin`` of
    :func:`sdebench.studies.order.order_table`)."""
    if orders.empty or "reference_margin" not in orders:
        return []
    referenced = orders[orders.reference_margin.notna()]
    return [f"reference: {against}; the smallest fitted error is "
            f"{part.reference_margin.min():.3g}× its change δ from half the steps (errors "
            "within δ count as at the floor)"
            for against, part in referenced.groupby("against", sort=False)]
