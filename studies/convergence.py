"""Convergence studies: solvers × step counts on problems with exact answers → tidy DataFrame.

One row per measurement with columns
``sde, problem, sampler, grid, steps, nfe, step_size, seed, metric, value, stderr, wall_time,
device, dtype, declared_order, strong_order, order_note``.

Metrics
* Gaussian data (exact output law, no Monte Carlo noise): ``w2`` and ``kl`` to p_{t_min};
  for solvers with a strong order, ``strong_error`` E‖x_N − x_ref‖ on shared Brownian paths
  (reference: 8× finer grid of the same family, nested) with its Monte Carlo standard error.
* Gaussian mixture (Monte Carlo, ``batch`` samples): ``nll`` = mean −log p_{t_min} of the samples
  (stderr = sample SD/√n), ``nll_exact`` the same for exact samples, ``sliced_w2`` against exact
  samples and ``sliced_w2_floor`` between two exact sample sets — the Monte Carlo floor below
  which differences are not discretisation error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch
from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.law import ExactLawNoise
from sdebench.problems.mixture import GaussianMixtureProblem
from sdebench.solvers.base import NonFiniteError, sample
from sdebench.solvers.grids import make_grid
from sdebench.solvers.noise import BrownianTree, GaussianIncrements
from sdebench.solvers.registry import get_solver
from sdebench.studies.store import ResultStore
from sdebench.theory import get_schedule
from tqdm.auto import tqdm

STRONG_REFERENCE_FACTOR = 8
SLICING_DIRECTIONS = 64


@dataclass
class StudyConfig:
    sdes: list[str]
    samplers: list[str]
    steps: list[int]
    problem: str = "gaussian"
    dim: int = 4
    batch: int = 256
    grid: str = "logsnr"
    dtype: str = "float64"
    device: str = "cpu"
    seed: int = 0
    strong: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]


def make_problem(config: StudyConfig, sde: str):
    schedule = get_schedule(sde)
    if config.problem == "gaussian":
        problem = GaussianProblem.random(schedule, config.dim, seed=config.seed)
    elif config.dim == 2:
        problem = GaussianMixtureProblem.ring(schedule)
    else:
        generator = torch.Generator().manual_seed(config.seed)
        means = 2 * torch.randn(4, config.dim, generator=generator, dtype=torch.float64)
        problem = GaussianMixtureProblem(schedule, torch.ones(4, dtype=torch.float64), means,
                                         torch.full_like(means, 0.1))
    return problem.to(dtype=config.torch_dtype, device=config.device)


def units(config: StudyConfig) -> Iterator[dict]:
    for sde in config.sdes:
        for sampler in config.samplers:
            for steps in config.steps:
                yield {"sde": sde, "problem": config.problem, "sampler": sampler,
                       "grid": config.grid, "steps": steps, "seed": config.seed,
                       "dtype": config.dtype, "device": config.device}


def _sliced_w2(a: torch.Tensor, b: torch.Tensor, generator) -> float:
    directions = torch.randn(a.shape[1], SLICING_DIRECTIONS, generator=generator, dtype=torch.float64)
    directions = (directions / directions.norm(dim=0)).to(a)
    pa, _ = torch.sort(a @ directions, dim=0)
    pb, _ = torch.sort(b @ directions, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())


def _timed_batch(solver_name, problem, ts, batch, seed, noise=None):
    generator = torch.Generator(device=problem.device).manual_seed(seed)
    x = problem.sample_marginal(ts[0], batch, generator)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = sample(solver_name, problem.denoiser, problem.schedule, x, ts,
                    noise=noise if noise is not None else GaussianIncrements(seed + 1))
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return x, result, time.perf_counter() - start


def run_unit(config: StudyConfig, unit: dict, problem) -> list[dict]:
    """All measurements of one (sde, sampler, steps) unit; a run whose model output turns
    non-finite (a diverging sampler) is recorded as one ``diverged`` row, not dropped."""
    try:
        return _measure(config, unit, problem)
    except NonFiniteError as error:
        solver = get_solver(unit["sampler"])
        return [{**unit, "nfe": math.nan, "step_size": math.nan, "wall_time": math.nan,
                 "declared_order": solver.order, "strong_order": solver.strong_order,
                 "order_note": f"diverged: {error}", "metric": "diverged", "value": math.inf,
                 "stderr": math.nan}]


def _measure(config: StudyConfig, unit: dict, problem) -> list[dict]:
    solver = get_solver(unit["sampler"])
    device = problem.device
    ts = make_grid(config.grid, problem.schedule, unit["steps"], device=device)
    _, batch_result, wall = _timed_batch(unit["sampler"], problem, ts, config.batch, config.seed)
    base = {**unit, "nfe": batch_result.nfe, "step_size": float((ts[:-1] - ts[1:]).abs().max()),
            "wall_time": wall, "declared_order": solver.order, "strong_order": solver.strong_order,
            "order_note": solver.order_note}
    rows = []

    def add(metric, value, stderr=math.nan):
        rows.append({**base, "metric": metric, "value": float(value), "stderr": float(stderr)})

    if isinstance(problem, GaussianProblem):
        law = sample(solver, problem.denoiser, problem.schedule, problem.marginal_law(ts[0]), ts,
                     noise=ExactLawNoise()).x
        add("w2", problem.w2(law, ts[-1]))
        add("kl", problem.kl(law, ts[-1]))
        if config.strong and solver.strong_order is not None:
            add("strong_error", *_strong_error(config, unit, problem, ts))
    else:
        generator = torch.Generator().manual_seed(config.seed + 2)
        exact, exact_2 = (
            problem.sample_marginal(ts[-1], config.batch,
                                    torch.Generator(device=device).manual_seed(config.seed + k))
            for k in (3, 4)
        )
        nll = -problem.log_density(batch_result.x, ts[-1])
        nll_exact = -problem.log_density(exact, ts[-1])
        root_n = math.sqrt(config.batch)
        add("nll", nll.mean(), nll.std() / root_n)
        add("nll_exact", nll_exact.mean(), nll_exact.std() / root_n)
        add("sliced_w2", _sliced_w2(batch_result.x, exact, generator))
        add("sliced_w2_floor", _sliced_w2(exact_2, exact, generator))
    return rows


def _strong_error(config, unit, problem, ts):
    tree = BrownianTree(float(ts[-1]), float(ts[0]), seed=config.seed + 5)
    x, coarse, _ = _timed_batch(unit["sampler"], problem, ts, config.batch, config.seed, noise=tree)
    fine_ts = make_grid(config.grid, problem.schedule, unit["steps"] * STRONG_REFERENCE_FACTOR,
                        device=ts.device)
    reference = sample(unit["sampler"], problem.denoiser, problem.schedule, x, fine_ts, noise=tree).x
    errors = (coarse.x - reference).flatten(1).norm(dim=1)
    return errors.mean(), errors.std() / math.sqrt(errors.numel())


SCATTER_POINTS = 400


def sample_points(config: StudyConfig, unit: dict, problem) -> list[dict]:
    """Up to 400 output points of a 2-D problem (for scatter plots), tidy rows."""
    device = problem.device
    ts = make_grid(config.grid, problem.schedule, unit["steps"], device=device)
    x = problem.sample_marginal(ts[0], SCATTER_POINTS,
                                torch.Generator(device=device).manual_seed(config.seed + 6))
    try:
        out = sample(unit["sampler"], problem.denoiser, problem.schedule, x, ts,
                     noise=GaussianIncrements(config.seed + 7)).x
    except NonFiniteError:
        return []
    return [{**unit, "point": i, "x": float(a), "y": float(b)}
            for i, (a, b) in enumerate(out[:, :2].tolist())]


def run_study(config: StudyConfig, store: ResultStore | None = None,
              progress: bool = True, sample_store: ResultStore | None = None) -> pd.DataFrame:
    """Run every unit not already in ``store`` (resume), saving after each; return all rows.
    For a 2-D Gaussian-mixture study, output points also go to ``sample_store``."""
    problems = {sde: make_problem(config, sde) for sde in config.sdes}
    todo = [unit for unit in units(config) if store is None or not store.done(unit)]
    collected = []
    scatter = config.problem == "gmm" and config.dim == 2 and sample_store is not None
    for unit in tqdm(todo, disable=not progress, desc="study", unit="run"):
        rows = run_unit(config, unit, problems[unit["sde"]])
        if scatter and not sample_store.done(unit):
            sample_store.add(sample_points(config, unit, problems[unit["sde"]]))
        if store is not None:
            store.add(rows)
        collected.extend(rows)
    if store is not None:
        mask = pd.Series(True, index=store.frame.index)
        for column, values in (("sde", config.sdes), ("sampler", config.samplers),
                               ("steps", config.steps)):
            mask &= store.frame[column].isin(values)
        for column, value in (("problem", config.problem), ("grid", config.grid),
                              ("seed", config.seed), ("dtype", config.dtype),
                              ("device", config.device)):
            mask &= store.frame[column].astype(str) == str(value)
        return store.frame[mask].reset_index(drop=True)
    return pd.DataFrame(collected)
