"""A study's configuration, resolved into sections and units with stable identifiers.

A *section* is one schedule with the problem setup (problem and its parameters, dim, batch,
grid, dtype, device, seed, the code): the rows a report may compare, fit and draw together. A
*unit* is a section × sampler (with its parameters) × step count × metric list: the smallest
piece of work, stored and resumed as a whole. Both identifiers hash the *full* configuration,
so a result is only ever reused by exactly the configuration that made it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import sympy
import torch

from sdebench.problems.adapters import (
    ModelAdapter,
    ModelContractError,
    load_model,
    network_digest,
    sample_shape,
)
from sdebench.problems.catalogue import PROBLEMS, get_problem
from sdebench.problems.model import LearnedScoreProblem, ModelProblem
from sdebench.problems.protocol import PATHS
from sdebench.registry import check_parameters, parse_spec
from sdebench.seeding import check_seed, generator
from sdebench.solvers.catalogue import SAMPLERS, get_solver
from sdebench.solvers.grids import GRIDS, make_grid
from sdebench.solvers.loop import final_sigma_is_zero, schedule_refusal
from sdebench.studies.metrics import METRICS, Metric, get_metric
from sdebench.studies.provenance import (
    code_provenance,
    digest,
    source_fingerprint,
    unit_identifier,
)
from sdebench.studies.reference import DEFAULT_REFERENCE, resolve_reference
from sdebench.theory.catalogue import SCHEDULES, get_schedule
from sdebench.theory.schedule import exact_number

DTYPES = {"float32": torch.float32, "float64": torch.float64}
PATH_MEMORY_BUDGET = 2**30
"""Bytes a study may spend on one shared Brownian path (K + 1 stored states, see
:func:`brownian_times`); above it each unit draws its own path on its own grids."""

DEFAULT_STEPS = (4, 8, 16, 32, 64, 128, 256)
"""The step counts of a study that names none (unless its problem declares others)."""

PURE_NOISE_STEPS = DEFAULT_STEPS + (512, 1024, 2048, 4096)
"""The step counts of a study with exact answers that names none, on schedules that all start at
pure noise (rf, vp0snr). Its first λ-steps stay O(1) whatever N (the ``graded`` grid's h_k ≈
2 log(1 + 1/k)), so λ-multistep samplers reach their asymptotic slopes later: measured on rf
(Gaussian, d = 4), DPM-Solver++(2M) SDE's local slopes are 1.86, 1.90, 1.95, 1.97 from 256 to
4096 steps, UniPC's 2.80 ± 0.64 at 64–256 and 2.97 ± 0.04 up to 2048."""

MAX_STEPS = 2**20
"""The largest step count a study accepts (1 048 576): beyond it a float64 run is at its
round-off floor for every solver of order ≥ 1 and one unit takes hours."""


def canonical(spec: str) -> str:
    return str(parse_spec(spec))


def _unique(values) -> tuple:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class StudyConfig:
    """What a convergence study runs. Specs (schedules, samplers, problem, grid, metrics) are
    registry names with optional parameters or ``module:attribute``; duplicates are dropped
    (first kept) and step counts sorted. ``metrics=None`` means every registered metric the
    problem answers (Monte Carlo metrics only where the problem has no exact law).
    ``steps``, ``dim``, ``batch`` None: the problem's own (:func:`problem_study_defaults`)."""

    schedules: tuple[str, ...]
    samplers: tuple[str, ...]
    steps: tuple[int, ...] | None
    problem: str | None = None
    dim: int | None = None
    batch: int | None = None
    grid: str = "logsnr"
    dtype: str = "float64"
    device: str = "cpu"
    seed: int = 0
    metrics: tuple[str, ...] | None = None
    strong_reference_factor: int = 8
    timing_repeats: int = 1
    reference: str = DEFAULT_REFERENCE
    model: str | None = None
    prediction: str | None = None
    shape: tuple[int, ...] | None = None
    compile: bool = False

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("schedules", "samplers"):
            values = [getattr(self, name)] if isinstance(getattr(self, name), str) else getattr(self, name)
            put(name, _unique(canonical(v) for v in values))
            if not getattr(self, name):
                raise ValueError(f"a study needs at least one of {name}")
        if self.problem is None:  # the network alone, or the Gaussian problem
            put("problem", "model" if self.model is not None else "gaussian")
        put("problem", canonical(self.problem))
        if self.problem == "model" and self.model is None:
            raise ValueError("problem 'model' needs a model (--model)")
        # the schedules are built only where the step counts depend on them
        schedules = self.schedules if self.steps is None else ()
        for name, value in problem_study_defaults(self.problem, schedules).items():
            if getattr(self, name) is None:
                put(name, value)
        steps = self.steps if not isinstance(self.steps, int) else [self.steps]
        for n in steps:
            if isinstance(n, bool) or int(n) != n or not 1 <= n <= MAX_STEPS:
                raise ValueError(f"steps must be integers in [1, {MAX_STEPS}], got {n!r}")
        put("steps", tuple(sorted({int(n) for n in steps})))
        put("grid", canonical(self.grid))
        if self.metrics is not None:
            put("metrics", _unique(canonical(m) for m in self.metrics))
        for name, low in (("dim", 1), ("batch", 2), ("strong_reference_factor", 2),
                          ("timing_repeats", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.model is not None:
            if self.shape is not None:
                put("shape", tuple(int(n) for n in self.shape))
        elif self.prediction is not None or self.shape is not None or self.compile:
            raise ValueError("prediction, shape and compile describe a model: give model too")
        resolve_reference(self.reference, self.steps)  # a bad reference fails before any unit
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        check_seed(self.seed)
        torch.device(self.device)  # raises for a malformed device string

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def as_dict(self) -> dict:
        return asdict(self)

    def default_out(self, root: str = "results/convergence") -> str:
        """A directory of its own for this study: readable prefix + hash of the configuration
        and the code, so different commands never share (or overwrite) a report."""
        names = "+".join(parse_spec(s).target for s in self.schedules)
        # a model problem's size is its network's sample shape (--dim does not apply to it)
        size = f"d{self.dim}" if self.problem != "model" else (
            "shape" + "x".join(map(str, self.shape)) if self.shape else "network-shape")
        prefix = f"{names}_{parse_spec(self.problem).target}_{size}_{self.dtype}"
        prefix = re.sub(r"[^A-Za-z0-9_+.-]", "-", prefix)[:80]
        return f"{root}/{prefix}_{digest({**self.as_dict(), **code_provenance()}, 10)}"


def problem_study_defaults(problem: str, schedules=()) -> dict:
    """The ``steps``, ``dim`` and ``batch`` of a study that names none: :data:`DEFAULT_STEPS`
    (:data:`PURE_NOISE_STEPS` where every schedule starts at pure noise and the problem is not a
    network: ``--sde all`` keeps the shorter default), 4 and 256, unless the problem's factory
    declares its own (``study_defaults(**parameters)``, e.g. an image problem's 3 res²,
    :mod:`sdebench.problems.spectrum`)."""
    defaults = {"steps": DEFAULT_STEPS, "dim": 4, "batch": 256}
    if problem == "model":
        return defaults
    if schedules and all(map(starts_at_pure_noise, schedules)):
        defaults["steps"] = PURE_NOISE_STEPS
    spec = parse_spec(problem)
    factory = PROBLEMS.factory(spec.target)
    declared = getattr(factory, "study_defaults", None)
    if declared is None:
        return defaults
    check_parameters(factory, spec.params, f"problem {spec.target!r}", ("schedule", "dim", "seed"))
    try:
        return {**defaults, **declared(**PROBLEMS.parameters(spec))}
    except ValueError as error:  # a bad value: say which spec it came from
        raise ValueError(f"problem {problem!r}: {error}") from error


@dataclass
class Section:
    """One schedule with the problem setup: ``config`` describes it fully, ``config_id`` hashes it."""

    schedule_spec: str
    problem: object
    config: dict
    config_id: str
    study: StudyConfig | None = field(default=None, repr=False, compare=False)
    """The configuration it was resolved from (:func:`check_sections`)."""


@dataclass
class Unit:
    """One section × sampler × step count, with the metrics that apply."""

    section: Section
    sampler: str
    solver: object
    steps: int
    metrics: tuple[Metric, ...]
    config: dict = field(repr=False)
    unit_id: str = ""
    path_times: torch.Tensor | None = field(default=None, repr=False)
    reference: str = ""


def _exact_parameters(params: dict) -> dict:
    """Schedule parameters as the exact numbers the schedule uses (0.1 → "1/10", 20 → "20")."""
    return {key: str(exact_number(value, key)) if isinstance(value, int | float | sympy.Basic)
            and not isinstance(value, bool) else value for key, value in params.items()}


def _schedule_description(schedule) -> dict:
    return {"s": str(schedule.s), "sigma": str(schedule.sigma), "t_min": str(schedule.t_min),
            "t_max": str(schedule.t_max)}


def _truth(config: StudyConfig, schedule) -> tuple[object, dict]:
    """The catalogue problem (in the study's dtype, on its device) and what defines it."""
    problem = get_problem(config.problem, schedule, dim=config.dim, seed=config.seed)
    return problem.to(dtype=config.torch_dtype, device=config.device), {
        "problem": config.problem,
        "problem_params": PROBLEMS.parameters(config.problem, schedule=schedule, dim=config.dim,
                                              seed=config.seed),
        "problem_source": source_fingerprint(PROBLEMS.factory(parse_spec(config.problem).target)),
        "dim": config.dim}


@dataclass(frozen=True)
class Network:
    """A study's ``--model``, loaded once (:func:`load_network`) and shared by its sections:
    the adapter, one sample's shape and what defines it (``description``, with the hash of the
    weights taken before the study's dtype changes them)."""

    adapter: ModelAdapter
    shape: tuple[int, ...]
    description: dict


def load_network(config: StudyConfig) -> Network:
    """Import the study's ``--model``, read its sample shape and hash its weights: the costly
    part of resolving a model study, done once for all its schedules."""
    adapter = load_model(config.model, config.prediction)
    shape = sample_shape(adapter, config.shape)
    network = adapter.network
    source = type(network) if isinstance(network, torch.nn.Module) else network
    return Network(adapter, shape, {"model": config.model, "convention": adapter.convention,
                                    "shape": list(shape), "weights": network_digest(network),
                                    "compile": config.compile,
                                    "model_source": source_fingerprint(source)})


def _check_trained_schedule(config: StudyConfig, adapter: ModelAdapter, spec: str) -> None:
    """Refuse a network trained on another schedule: its time t means nothing on ``spec``."""
    if adapter.schedule is not None and canonical(adapter.schedule) != spec:
        raise ValueError(f"model {config.model!r} was trained on schedule {adapter.schedule!r}; "
                         f"its time t means nothing on {spec!r} (use --sde {adapter.schedule})")


def _check_network_call(config: StudyConfig, problem) -> None:
    """One call of the network on two start samples, so that a shape (or dtype) it cannot take
    fails here, naming it, instead of as every unit's failed row. A breach of the model
    contract on that first call (:class:`~sdebench.problems.adapters.ModelContractError`) is
    raised as it is: its one line already names the model and what it returned."""
    t_max = torch.tensor(float(problem.schedule.t_max), dtype=torch.float64, device=problem.device)
    x = problem.sample_marginal(t_max, 2, generator(config.seed, "network_check",
                                                    device=problem.device))
    try:
        denoised = problem.denoiser(x, t_max)
    except ModelContractError:
        raise
    except Exception as error:  # the user's network: any error means it cannot take these states
        raise ValueError(f"model {config.model!r} cannot denoise states of shape "
                         f"{tuple(x.shape)} ({config.dtype}): {type(error).__name__}: {error} "
                         "(check --shape)") from error
    if getattr(denoised, "shape", None) != x.shape:
        raise ValueError(f"model {config.model!r} returns shape "
                         f"{tuple(getattr(denoised, 'shape', ()))} for states of shape "
                         f"{tuple(x.shape)} (check --shape and --prediction)")


def _check_training_data(config: StudyConfig, adapter, schedule) -> None:
    """Refuse a network trained on another data law than the study's problem: its verdicts
    would measure the mismatch, not the samplers. Two laws are the same when the catalogue
    draws the same 64 samples from both (same problem, parameters, dimension and seed)."""
    trained = adapter.data
    if trained is None:
        return
    stream = lambda: generator(0, "training_data_check")  # noqa: E731
    t_min = torch.tensor(float(schedule.t_min), dtype=torch.float64)
    ours = get_problem(config.problem, schedule, dim=config.dim, seed=config.seed)
    try:
        theirs = get_problem(trained["problem"], schedule, dim=trained["dim"],
                             seed=trained["seed"])
        same = torch.equal(ours.sample_marginal(t_min, 64, stream()),
                           theirs.sample_marginal(t_min, 64, stream()))
    except ValueError:
        same = False
    if not same:
        raise ValueError(
            f"model {config.model!r} was trained on problem {trained['problem']!r} (dim "
            f"{trained['dim']}, seed {trained['seed']}); problem {config.problem!r} (dim "
            f"{config.dim}, seed {config.seed}) is another data law, so its verdicts would "
            f"measure the mismatch (use --problem {trained['problem']} --dim {trained['dim']} "
            f"--seed {trained['seed']})")


def _problems(config: StudyConfig, spec: str, schedule, network: Network | None
              ) -> list[tuple[object, dict]]:
    """The section problems of one schedule: the catalogue problem; or the user's network
    alone (reference-based); or, with both, the network on the problem's truth (``score:
    learned``) beside the exact score (``score: exact``)."""
    if network is None:
        return [_truth(config, schedule)]
    adapter, shape, model = network.adapter, network.shape, network.description
    _check_trained_schedule(config, adapter, spec)
    if config.problem == "model":
        problem = ModelProblem(adapter, schedule, shape, compile=config.compile).to(
            dtype=config.torch_dtype, device=config.device)
        _check_network_call(config, problem)
        return [(problem, {"problem": "model", "problem_params": model, "dim": problem.dim})]
    truth, description = _truth(config, schedule)
    if math.prod(shape) != truth.dim:
        raise ValueError(f"model {config.model!r} makes samples of shape {shape}; problem "
                         f"{config.problem!r} has dimension {truth.dim} (check --dim)")
    _check_training_data(config, adapter, schedule)
    learned = LearnedScoreProblem(truth, adapter, compile=config.compile, shape=shape)
    _check_network_call(config, learned)
    return [(learned, {**description, "score": "learned", "model_params": model}),
            (truth, {**description, "score": "exact"})]


def resolve_sections(config: StudyConfig) -> list[Section]:
    """Build each schedule's problem (moved to the study's dtype/device) and describe it; a
    ``--model`` is loaded and its weights hashed once (:func:`load_network`), for every
    schedule. A study resolves its sections once: the command line hands them to
    :func:`~sdebench.studies.convergence.run_study`."""
    network = None if config.model is None else load_network(config)
    sections = []
    for spec in config.schedules:
        schedule = get_schedule(spec)
        make_grid(config.grid, schedule, 1)  # a bad grid spec fails here, before any unit runs
        for problem, problem_description in _problems(config, spec, schedule, network):
            sections.append(_section(config, spec, schedule, problem, problem_description))
    return sections


def check_sections(config: StudyConfig, sections: list[Section]) -> None:
    """Refuse sections that :func:`resolve_sections` did not make from ``config`` (each section
    records the configuration it was resolved from)."""
    if not sections or any(section.study != config for section in sections):
        raise ValueError("the sections given were not resolved from this study's configuration "
                         "(resolve_sections(config))")


def _section(config: StudyConfig, spec: str, schedule, problem, problem_description) -> Section:
    description = {
        "schedule": spec,
        "schedule_params": _exact_parameters(SCHEDULES.parameters(spec)),
        "schedule_definition": _schedule_description(schedule),
        **problem_description,
        "batch": config.batch,
        "grid": config.grid,
        "grid_params": GRIDS.parameters(config.grid, schedule=schedule, steps=1,
                                        dtype=config.torch_dtype, device=config.device),
        "grid_source": source_fingerprint(GRIDS.factory(parse_spec(config.grid).target)),
        "dtype": config.dtype, "device": config.device, "seed": config.seed,
        "strong_reference_factor": config.strong_reference_factor,
        "timing_repeats": config.timing_repeats,
        **code_provenance(),
    }
    return Section(spec, problem, description, digest(description), config)


def _metrics_for(config: StudyConfig, problem, solver) -> tuple[Metric, ...]:
    if config.metrics is None:
        return tuple(metric for name in METRICS.names()
                     if (metric := get_metric(name)).default_for(problem, solver))
    chosen = []
    for name in config.metrics:
        metric = get_metric(name)
        if not metric.requires <= problem.capabilities:
            raise ValueError(f"metric {name!r} needs a problem that answers "
                             f"{sorted(metric.requires)}; problem {config.problem!r} answers "
                             f"{sorted(problem.capabilities)}")
        if metric.applies_to(problem, solver):
            chosen.append(metric)
    return tuple(chosen)


def _grid_times(config: StudyConfig, schedule, steps) -> torch.Tensor:
    """The sorted union of the study grids with these step counts and their reference grids."""
    counts = sorted({n for k in steps for n in (k, k * config.strong_reference_factor)})
    return torch.unique(torch.cat([make_grid(config.grid, schedule, n) for n in counts]))


def brownian_times(config: StudyConfig, section: Section, steps: int) -> torch.Tensor:
    """The times of the Brownian path a pathwise unit is driven by: the union of *every* grid of
    the study (each step count and its reference), so that all step counts share one path
    (common random numbers, as a Brownian tree gives), unless that path would exceed
    :data:`PATH_MEMORY_BUDGET`; then the union of this unit's two grids."""
    schedule = section.problem.schedule
    times = _grid_times(config, schedule, config.steps)
    state_bytes = config.batch * section.problem.dim * torch.finfo(config.torch_dtype).bits // 8
    if times.numel() * state_bytes > PATH_MEMORY_BUDGET:
        times = _grid_times(config, schedule, [steps])
    return times


def _check_zero_sigma(config: StudyConfig, section: Section) -> None:
    """Refuse, before any unit runs, the samplers that cannot end the study's grid where σ = 0
    (``edm:sigma_min=0``): each of their units would fail (they divide by σ(t_next),
    :func:`sdebench.solvers.loop.check_zero_sigma`)."""
    schedule = section.problem.schedule
    if not final_sigma_is_zero(schedule, make_grid(config.grid, schedule, 1)):
        return
    refused = [name for name in config.samplers
               if not getattr(get_solver(name), "handles_zero_sigma", False)]
    if refused:
        raise ValueError(f"grid {config.grid!r} on schedule {section.schedule_spec!r} ends where "
                         f"sigma = 0, and {', '.join(refused)} divide by sigma(t_next): leave them "
                         "out of --samplers, or end at sigma > 0")


def starts_at_pure_noise(schedule_spec: str) -> bool:
    """Whether the schedule a spec names has s = 0, σ = ∞ at t_max (rf, vp0snr)."""
    return get_schedule(schedule_spec).pure_noise_end


def default_grid(schedule_specs: list[str]) -> str:
    """``logsnr`` (uniform in λ, DPM-Solver's choice), or ``auto`` — the same, but ``graded`` on a
    schedule that starts at pure noise (``rf``, ``vp0snr``), where λ = −∞: no grid is uniform in
    it, and one uniform in t (the flow-matching samplers' choice, Esser et al. 2024) costs
    λ-step methods their order (theory/claims/pure_noise_grids.py) — when the study has one."""
    return "auto" if any(map(starts_at_pure_noise, schedule_specs)) else "logsnr"


def refused_samplers(config: StudyConfig, section: Section) -> dict[str, str]:
    """The samplers that cannot run on the section's schedule and why (a pure-noise start they
    cannot take, or a schedule they refuse: :func:`sdebench.solvers.loop.schedule_refusal`):
    the study runs none of their units and says so."""
    schedule = section.problem.schedule
    reasons = {name: schedule_refusal(get_solver(name), schedule) for name in config.samplers}
    return {name: reason for name, reason in reasons.items() if reason}


def resolve_units(config: StudyConfig, sections: list[Section]) -> list[Unit]:
    """Every (section, sampler, steps) unit with at least one metric that applies, with its full
    configuration and identifier. A unit measured on Brownian paths records which path (a hash
    of its times, :func:`brownian_times`): the same unit on another path is another unit."""
    units = []
    for section in sections:
        _check_zero_sigma(config, section)
        refused = refused_samplers(config, section)
        for sampler in config.samplers:
            if sampler in refused:
                continue
            solver = get_solver(sampler)
            metrics = _metrics_for(config, section.problem, solver)
            if not metrics:  # e.g. --metrics strong_error for an ODE sampler: nothing to run
                continue
            check_options = getattr(solver, "check_options", None)  # a peer's bad option values
            if check_options is not None:
                check_options(section.problem.schedule, config.steps)  # the largest vs its limits
            description = {
                "config_id": section.config_id, "sampler": sampler,
                "sampler_class": f"{type(solver).__module__}.{type(solver).__qualname__}",
                "sampler_params": solver.parameters() if hasattr(solver, "parameters") else {},
                "sampler_source": source_fingerprint(type(solver)),
                "metrics": [metric.name for metric in metrics],
                "metric_sources": [source_fingerprint(metric.fn) for metric in metrics],
            }
            pathwise = any(PATHS in metric.requires for metric in metrics)
            reference = resolve_reference(config.reference, config.steps) if any(
                metric.reference_based for metric in metrics) else ""
            for steps in config.steps:
                path_times = brownian_times(config, section, steps) if pathwise else None
                unit_config = {**description, "steps": steps}
                if path_times is not None:
                    unit_config["brownian_path"] = digest(path_times.tolist())
                if reference:
                    unit_config["reference"] = reference
                unit_id = unit_identifier(unit_config)
                unit_config["sampler_index"] = config.samplers.index(sampler)  # display order only
                units.append(Unit(section, sampler, get_solver(sampler), steps, metrics,
                                  unit_config, unit_id, path_times, reference))
    return units


def known_names() -> dict[str, list[str]]:
    """The registered names of each catalogue (for help texts and error messages)."""
    return {"schedules": SCHEDULES.names(), "samplers": SAMPLERS.names(),
            "problems": PROBLEMS.names(), "grids": GRIDS.names(), "metrics": METRICS.names()}
