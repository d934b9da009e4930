"""The field audit: every peer sampler sdebench can run, in the configurations people use, judged
on exact answers — one table whose rows say, per library and sampler, what it declares, what it
measures, how it agrees with sdebench's own implementation, and which finding explains a defect.

The audit is a fixed set of stages. Most are convergence studies (Gaussian data, d = 4, exact
output laws, ``w2`` and ``agreement``): the VE/VP/EDM samplers of both libraries on ``edm`` (with
the option values people set: orders, SDE forms), diffusers' stock grids and options on the same
table (σ spacings, timestep spacings, final σ, solver types), diffusers' schedulers on Stable
Diffusion's own training table (:data:`SD_TABLE`, built by each scheduler as it ships) with the
configurations it ships (and two with sdebench's settings beside them), diffusers' flow-matching schedulers
on ``rf`` and with SD3's shift on ``rf:shift=3``, and the zero-terminal-SNR configurations on
``vp0snr``. Two stages judge what an order cannot: diffusers' inversion schedulers by their exact
round-trip error x₀ → x_T → x₀ against the step count (:func:`inversion_results`), and
k-diffusion's adaptive sampler by its error at the NFE its tolerances buy
(:func:`adaptive_results`). A sampler a stage's schedule rules out is left out of that stage with
its reason (the convergence study's refusals, verdict ``REFUSED``), and one whose configuration
cannot be judged on exact answers at all (its ``refusal``) gets the verdict ``NOT JUDGED`` with
its reason — never silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sdebench.studies.conformance import conformance_table
from sdebench.studies.precision import error_at_nfe


@dataclass(frozen=True)
class Stage:
    """One study of the audit: a schedule and the samplers judged on it."""

    name: str
    schedule: str
    samplers: tuple[str, ...]


_VARIANTS_ON_EDM = (
    "diffusers.DPMSolverMultistepScheduler:solver_order=1",
    "diffusers.DPMSolverMultistepScheduler:solver_order=3",
    "diffusers.DPMSolverMultistepScheduler:algorithm_type=sde-dpmsolver++",
    "diffusers.DPMSolverSinglestepScheduler:solver_order=1",
    "diffusers.DPMSolverSinglestepScheduler:solver_order=3",
    "diffusers.DEISMultistepScheduler:solver_order=1",
    "diffusers.DEISMultistepScheduler:solver_order=3",
    "diffusers.UniPCMultistepScheduler:solver_type=bh1",
    "diffusers.UniPCMultistepScheduler:solver_order=3",
    "diffusers.ScoreSdeVeScheduler:correct_steps=0",
    "diffusers.KarrasVeScheduler:s_churn=0",
    "kdiffusion.dpmpp_3m_sde:eta=0",
)
_DPM = "diffusers.DPMSolverMultistepScheduler"
_STOCK_OPTIONS = (
    f"{_DPM}:use_karras_sigmas=true", f"{_DPM}:use_exponential_sigmas=true",
    f"{_DPM}:use_beta_sigmas=true", f"{_DPM}:use_lu_lambdas=true",
    f"{_DPM}:timestep_spacing=leading", f"{_DPM}:timestep_spacing=trailing",
    f"{_DPM}:final_sigmas_type=zero", f"{_DPM}:euler_at_final=true", f"{_DPM}:solver_type=heun",
    "diffusers.EulerDiscreteScheduler:use_karras_sigmas=true",
    "diffusers.EulerDiscreteScheduler:timestep_spacing=trailing",
    "diffusers.DDIMScheduler:timestep_spacing=leading",
    "diffusers.DDIMScheduler:timestep_spacing=linspace",
)
_FLOW = ("diffusers.FlowMatchEulerDiscreteScheduler", "diffusers.FlowMatchHeunDiscreteScheduler",
         "diffusers.FlowMatchEulerDiscreteScheduler:stochastic_sampling=true",
         "diffusers.FlowMatchEulerDiscreteScheduler:use_karras_sigmas=true",
         "diffusers.DPMSolverMultistepScheduler:use_flow_sigmas=true",
         "diffusers.UniPCMultistepScheduler:use_flow_sigmas=true",
         "diffusers.DEISMultistepScheduler:use_flow_sigmas=true",
         "diffusers.SASolverScheduler:use_flow_sigmas=true", "diffusers.IPNDMScheduler")
_SHIFTED = ("diffusers.FlowMatchEulerDiscreteScheduler:shift=3.0",
            "diffusers.FlowMatchHeunDiscreteScheduler:shift=3.0",
            "diffusers.DPMSolverMultistepScheduler:use_flow_sigmas=true:flow_shift=3.0")
_ZERO_SNR = ("diffusers.DDIMScheduler:prediction_type=v_prediction", "diffusers.DDIMScheduler",
             "diffusers.DPMSolverMultistepScheduler",
             "diffusers.DPMSolverMultistepScheduler:rescale_betas_zero_snr=true",
             "diffusers.UniPCMultistepScheduler:rescale_betas_zero_snr=true:"
             "prediction_type=v_prediction")
SD_TABLE = "table:beta_schedule=scaled_linear:beta_start=0.00085:beta_end=0.012"
"""Stable Diffusion's training table (1.x, 2.x and SDXL ship it; T = 1000), as a schedule."""
SD_STAGE = "Stable Diffusion's table and configurations, as shipped"
_AS_SHIPPED = (
    # SD 1.5's scheduler_config.json (PNDM: skip_prk_steps, steps_offset 1, set_alpha_to_one and
    # clip_sample off), the keys each scheduler takes from it by from_config, and each one's own
    # defaults for the rest: final_sigmas_type "zero" where sdebench's settings say sigma_min,
    # DDIM's and PNDM's leading spacing; SDXL ships Euler with leading spacing and steps_offset 1
    "diffusers.PNDMScheduler:skip_prk_steps=true:timestep_spacing=leading:steps_offset=1",
    "diffusers.DDIMScheduler:timestep_spacing=leading:steps_offset=1",
    f"{_DPM}:final_sigmas_type=zero",
    f"{_DPM}:final_sigmas_type=zero:use_karras_sigmas=true",
    "diffusers.EulerDiscreteScheduler:timestep_spacing=leading:steps_offset=1:"
    "final_sigmas_type=zero",
    "diffusers.EulerAncestralDiscreteScheduler", "diffusers.UniPCMultistepScheduler:"
    "final_sigmas_type=zero", "diffusers.LMSDiscreteScheduler", "diffusers.HeunDiscreteScheduler",
    "diffusers.KDPM2DiscreteScheduler", "diffusers.DEISMultistepScheduler",
    # the same table with sdebench's settings, beside them: what the stock ones cost
    _DPM, "diffusers.DDIMScheduler",
)
_PURE_NOISE_START = ("diffusers.FlowMatch", "diffusers.IPNDM")
ADAPTIVE = ("kdiffusion.dpm_adaptive",)
"""The adaptive samplers, judged by :func:`adaptive_results` at each of their tolerances."""

INVERSIONS = ("diffusers.DDIMInverseScheduler", "diffusers.DPMSolverMultistepInverseScheduler")
"""The inversion schedulers, each judged by its round trip with the scheduler it inverts
(:mod:`sdebench.peers.inversion`)."""
INVERSION_STAGE = "inversion round trip"

ADAPTIVE_TOLERANCES = ((0.05, 0.0078), (1e-2, 1e-3), (1e-3, 1e-4), (1e-4, 1e-5))
"""(rtol, atol) of k-diffusion's dpm_adaptive in the audit: its defaults, then tenfold tighter."""
ADAPTIVE_STAGE = "adaptive step size"

NOT_JUDGED = "NOT JUDGED"
"""The verdict of a sampler whose configuration cannot be judged on exact answers at all (its
``refusal`` says why), as opposed to ``REFUSED``, which only the stage's schedule rules out."""


def stages(peers: list[str]) -> list[Stage]:
    """The audit's convergence stages; ``peers``: every peer sampler's name (their default
    options), judged on edm with the variants above, but for the schedulers whose own grid
    starts at pure noise (diffusers' FlowMatch and IPNDM), judged on rf, and the adaptive ones,
    judged by :func:`adaptive_results`."""
    on_edm = [name for name in peers if not name.startswith(_PURE_NOISE_START + ADAPTIVE)]
    return [Stage("VE/VP/EDM samplers", "edm", (*on_edm, *_VARIANTS_ON_EDM)),
            Stage("diffusers' stock grids and options", "edm", _STOCK_OPTIONS),
            Stage(SD_STAGE, SD_TABLE, _AS_SHIPPED),
            Stage("flow matching", "rf", _FLOW),
            Stage("flow matching, SD3's shift", "rf:shift=3", _SHIFTED),
            Stage("zero terminal SNR", "vp0snr", _ZERO_SNR)]


def stage_names() -> list[str]:
    """Every stage of the audit, in its order: the convergence stages, then the two others."""
    return [stage.name for stage in stages([])] + [INVERSION_STAGE, ADAPTIVE_STAGE]


# sampler spec → the finding (experiments/findings/<script>) that explains its defect
FINDINGS = {
    "diffusers.DPMSolverMultistepScheduler:solver_order=3": "dpmpp_3m_second_order.py",
    "kdiffusion.dpmpp_3m_sde:eta=0": "dpmpp_3m_second_order.py",
    "diffusers.DEISMultistepScheduler:solver_order=3": "deis_3_float32_coefficients.py",
    "diffusers.DEISMultistepScheduler:use_flow_sigmas=true": "flow_mode_stops_short.py",
    "diffusers.SASolverScheduler:use_flow_sigmas=true": "flow_mode_stops_short.py",
    "diffusers.IPNDMScheduler": "ipndm_first_step.py",
    f"{_DPM}:use_exponential_sigmas=true": "fractional_timesteps_truncated.py",
    f"{_DPM}:use_beta_sigmas=true": "fractional_timesteps_truncated.py",
}

# (stage, sampler spec) → the finding that explains its defect on that stage only
STAGE_FINDINGS = {
    # T = 1000: DDIM's stride ⌊T/N⌋ misses its trailing timesteps where N ∤ T (edm's 1024-entry
    # table and power-of-two N hide it)
    (SD_STAGE, "diffusers.DDIMScheduler"): "ddim_trailing_prev_timestep.py",
}

_VERSION_COLUMNS = {"diffusers": "diffusers_version", "k-diffusion": "k_diffusion_version"}

AUDIT_COLUMNS = ["stage", "schedule", "library", "sampler", "declared_order", "order_source",
                 "measured_order", "ci95", "fit_steps", "verdict", "reason", "nfe_10", "nfe_20",
                 "nfe_50", "twin", "agreement", "agrees", "convention", "version", "finding"]


def _study_row(problem, solver, spec: str, config_id: str, steps: int, metric: str,
                value: float, nfe: float, floor: float, floor_kind: str) -> dict:
    """One measurement in a convergence study's long format (the columns the order table,
    the error-at-NFE table and the conformance table read), with the provenance of every row."""
    from sdebench.studies.provenance import row_provenance

    return {"config_id": config_id, "schedule": problem.schedule.name, "problem": "gaussian",
            "sampler": spec, "library": solver.library, "steps": steps, "metric": metric,
            "metric_order": "order",  # fitted, or N/A where the solver declares no order
            "declared_order": solver.order, "declared_strong_order": None,
            "order_note": getattr(solver, "order_note", ""),
            "order_source": solver.order_source, "twin": "",
            "convention": solver.convention, "steps_on": getattr(solver, "steps_on", ""),
            "status": "ok", "error": "", "value": value, "stderr": math.nan, "nfe": nfe,
            "floor": floor, "floor_kind": floor_kind, "reference": math.nan,
            **row_provenance()}


def inversion_results(steps, schedule: str = "edm", dim: int = 4, seed: int = 0) -> pd.DataFrame:
    """Each inversion scheduler's exact round-trip error √E‖y − x₀‖² (metric ``round_trip``,
    :func:`sdebench.peers.inversion.round_trip_error`) from the data law at t_min, at each step
    count N (NFE 2N), in the study's long format, fitted against its declared order. Floor: the
    a-priori round-off λ u √NFE √E‖x₀‖² (λ = ROUNDOFF_SAFETY, u of float32, the precision
    diffusers computes in; a study unit's measured round-off needs a study unit)."""
    from sdebench.peers.base import probe_law
    from sdebench.peers.inversion import RoundTrip, round_trip_error
    from sdebench.problems import get_problem
    from sdebench.solvers import make_grid
    from sdebench.solvers.solver import unit_roundoff
    from sdebench.studies.metrics import ROUNDOFF_SAFETY
    from sdebench.theory import get_schedule

    problem = get_problem("gaussian", get_schedule(schedule), dim=dim, seed=seed)
    rows = []
    for spec in INVERSIONS:
        peer = RoundTrip(spec.split(".", 1)[1])
        for n in steps:
            ts = make_grid("logsnr", problem.schedule, n)
            data = problem.marginal_law(ts[-1])
            error = round_trip_error(data, probe_law(peer, problem.denoiser, problem.schedule,
                                                     data, ts))
            nfe = 2 * n * peer.inverse.nfe_per_step
            floor = ROUNDOFF_SAFETY * unit_roundoff(peer, data.dtype) * math.sqrt(nfe) \
                * math.sqrt(float((data.mean**2).sum() + data.variance.sum()))
            rows.append(_study_row(problem, peer, spec, f"{INVERSION_STAGE} {schedule}", n,
                                    "round_trip", error, nfe, floor, "a-priori round-off"))
    return pd.DataFrame(rows)


def adaptive_results(schedule: str = "edm", dim: int = 4, seed: int = 0) -> pd.DataFrame:
    """k-diffusion's dpm_adaptive at each of :data:`ADAPTIVE_TOLERANCES`: W₂ of its exact output
    law (the steps it decides on the draws of :func:`sdebench.peers.kdiffusion.decision_draws`)
    and its NFE on those draws — its error at the cost its tolerances buy, not an order."""
    from sdebench.peers.kdiffusion import decision_draws
    from sdebench.problems import get_problem
    from sdebench.problems.law import ExactLawNoise
    from sdebench.solvers import get_solver, make_grid, sample
    from sdebench.solvers.noise import GaussianIncrements
    from sdebench.theory import get_schedule

    problem = get_problem("gaussian", get_schedule(schedule), dim=dim, seed=seed)
    ts = make_grid("logsnr", problem.schedule, 1)  # its ends: the grid between is its own
    start = problem.marginal_law(ts[0])
    rows = []
    for name in ADAPTIVE:
        for rtol, atol in ADAPTIVE_TOLERANCES:
            spec = f"{name}:rtol={rtol:g}:atol={atol:g}"
            peer = get_solver(spec)
            nfe = sample(peer, problem.denoiser, problem.schedule, decision_draws(start), ts,
                         noise=GaussianIncrements(seed)).nfe
            law = sample(peer, problem.denoiser, problem.schedule, start, ts,
                         noise=ExactLawNoise()).x
            rows.append(_study_row(problem, peer, spec, f"{ADAPTIVE_STAGE} {schedule}", 1,
                                    "w2", float(problem.w2(law, ts[-1])), nfe, math.nan, ""))
    return pd.DataFrame(rows)


def audit_table(results: pd.DataFrame, orders: pd.DataFrame,
                stage_of: dict[tuple[str, str], str], refused: dict[tuple[str, str], str],
                not_judged: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """One row per (stage, peer sampler): the conformance row (declared and measured order,
    verdict and reason, agreement with the twin), its error at NFE 10/20/50 (interpolated on its
    measured curve, blank outside it or at its floor), the library's version and its finding;
    an adaptive sampler's row states its error at its measured NFE as its reason; one row per
    sampler a stage refused, verdict ``REFUSED``, and per sampler that cannot be judged,
    verdict :data:`NOT_JUDGED`, each with the reason. ``stage_of``: (config_id, sampler) →
    stage name (two stages on one schedule share a section); ``refused``, ``not_judged``:
    (stage, sampler) → reason."""
    table = conformance_table(results, orders)
    table = table[table.metric.isin(["w2", "round_trip"])].copy()
    table["stage"] = [stage_of[key] for key in zip(table.config_id, table.sampler, strict=True)]
    schedules = results.drop_duplicates("config_id").set_index("config_id").schedule
    table["schedule"] = table.config_id.map(schedules)
    versions = results.drop_duplicates("sampler").set_index("sampler")
    table["version"] = [f"{library} {versions.loc[sampler, _VERSION_COLUMNS[library]]}"
                        for library, sampler in zip(table.library, table.sampler, strict=True)]
    at_nfe = error_at_nfe(results)
    at_nfe = at_nfe[at_nfe.metric.isin(["w2", "round_trip"])]
    for target in (10, 20, 50):
        cells = at_nfe[at_nfe.nfe == target].set_index(["config_id", "sampler"])
        value = cells.value.where(~cells.at_floor.astype(bool))
        table[f"nfe_{target}"] = [value.get((c, s), float("nan"))
                                  for c, s in zip(table.config_id, table.sampler, strict=True)]
    adaptive = table.stage == ADAPTIVE_STAGE
    table.loc[adaptive, "reason"] = [_adaptive_reason(results, c, s) for c, s in zip(
        table.config_id[adaptive], table.sampler[adaptive], strict=True)]
    table["finding"] = [_finding(stage, sampler)
                        for stage, sampler in zip(table.stage, table.sampler, strict=True)]
    reasons = [{"stage": stage, "sampler": sampler, "verdict": verdict, "reason": reason}
               for verdict, given in (("REFUSED", refused), (NOT_JUDGED, not_judged or {}))
               for (stage, sampler), reason in given.items()]
    return pd.concat([table, pd.DataFrame(reasons)], ignore_index=True).reindex(
        columns=AUDIT_COLUMNS)


def _adaptive_reason(results: pd.DataFrame, config_id: str, sampler: str) -> str:
    """An adaptive sampler's evidence: its W₂ at the NFE it took."""
    row = results[(results.config_id == config_id) & (results.sampler == sampler)
                  & (results.metric == "w2")].iloc[0]
    return (f"adaptive, judged by error against NFE: W₂ {row.value:.2e} at its measured NFE "
            f"{int(row.nfe)}")


def _finding(stage: str, sampler: str) -> str:
    """The finding for a sampler's spec as the study writes it (quoted option values) on a
    stage: :data:`STAGE_FINDINGS`' for that stage, else :data:`FINDINGS`'."""
    plain = sampler.replace("'", "")
    return STAGE_FINDINGS.get((stage, plain), FINDINGS.get(plain, ""))
