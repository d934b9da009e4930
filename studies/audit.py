"""The field audit: every peer sampler sdebench can run, in the configurations people use, judged
on exact answers — one table whose rows say, per library and sampler, what it declares, what it
measures, how it agrees with sdebench's own implementation, and which finding explains a defect.

The audit is a fixed set of stages, each a convergence study (Gaussian data, d = 4, exact output
laws, ``w2`` and ``agreement``): the VE/VP/EDM samplers of both libraries on ``edm`` (with the
option values people set: orders, SDE forms), diffusers' flow-matching schedulers on ``rf`` and
with SD3's shift on ``rf:shift=3``, and the zero-terminal-SNR configurations on ``vp0snr``. A
sampler a stage's schedule rules out is left out of that stage with its reason (the convergence
study's refusals), never silently.
"""

from __future__ import annotations

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
    "kdiffusion.dpmpp_3m_sde:eta=0",
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


def stages(peers: list[str]) -> list[Stage]:
    """The audit's stages; ``peers``: every peer sampler's name (their default options), judged
    on edm with the variants above, but for the schedulers whose own grid starts at pure noise
    (diffusers' FlowMatch and IPNDM), judged on rf."""
    pure_noise = ("diffusers.FlowMatch", "diffusers.IPNDM")
    return [Stage("VE/VP/EDM samplers", "edm",
                  (*[name for name in peers if not name.startswith(pure_noise)],
                   *_VARIANTS_ON_EDM)),
            Stage("flow matching", "rf", _FLOW),
            Stage("flow matching, SD3's shift", "rf:shift=3", _SHIFTED),
            Stage("zero terminal SNR", "vp0snr", _ZERO_SNR)]


# sampler spec → the finding (experiments/findings/<script>) that explains its defect
FINDINGS = {
    "diffusers.DPMSolverMultistepScheduler:solver_order=3": "dpmpp_3m_second_order.py",
    "kdiffusion.dpmpp_3m_sde:eta=0": "dpmpp_3m_second_order.py",
    "diffusers.DEISMultistepScheduler:solver_order=3": "deis_3_float32_coefficients.py",
    "diffusers.DEISMultistepScheduler:use_flow_sigmas=true": "flow_mode_stops_short.py",
    "diffusers.SASolverScheduler:use_flow_sigmas=true": "flow_mode_stops_short.py",
    "diffusers.IPNDMScheduler": "ipndm_first_step.py",
}

_VERSION_COLUMNS = {"diffusers": "diffusers_version", "k-diffusion": "k_diffusion_version"}

AUDIT_COLUMNS = ["stage", "schedule", "library", "sampler", "declared_order", "order_source",
                 "measured_order", "ci95", "fit_steps", "verdict", "reason", "nfe_10", "nfe_20",
                 "nfe_50", "twin", "agreement", "agrees", "convention", "version", "finding"]


def audit_table(results: pd.DataFrame, orders: pd.DataFrame, stage_of: dict[str, str],
                refused: dict[tuple[str, str], str]) -> pd.DataFrame:
    """One row per (stage, peer sampler): the conformance row (declared and measured order,
    verdict and reason, agreement with the twin), its W₂ at NFE 10/20/50 (interpolated on its
    measured curve, blank outside it or at its floor), the library's version and its finding;
    and one row per sampler a stage refused, verdict ``REFUSED`` with the reason.
    ``stage_of``: config_id → stage name; ``refused``: (stage, sampler) → reason."""
    table = conformance_table(results, orders)
    table = table[table.metric == "w2"].copy()
    table["stage"] = table.config_id.map(stage_of)
    schedules = results.drop_duplicates("config_id").set_index("config_id").schedule
    table["schedule"] = table.config_id.map(schedules)
    versions = results.drop_duplicates("sampler").set_index("sampler")
    table["version"] = [f"{library} {versions.loc[sampler, _VERSION_COLUMNS[library]]}"
                        for library, sampler in zip(table.library, table.sampler, strict=True)]
    at_nfe = error_at_nfe(results)
    at_nfe = at_nfe[at_nfe.metric == "w2"]
    for target in (10, 20, 50):
        cells = at_nfe[at_nfe.nfe == target].set_index(["config_id", "sampler"])
        value = cells.value.where(~cells.at_floor.astype(bool))
        table[f"nfe_{target}"] = [value.get((c, s), float("nan"))
                                  for c, s in zip(table.config_id, table.sampler, strict=True)]
    table["finding"] = [_finding(sampler) for sampler in table.sampler]
    refusals = pd.DataFrame([{"stage": stage, "sampler": sampler, "verdict": "REFUSED",
                              "reason": reason} for (stage, sampler), reason in refused.items()])
    return pd.concat([table, refusals], ignore_index=True).reindex(columns=AUDIT_COLUMNS)


def _finding(sampler: str) -> str:
    """The finding for a sampler's spec as the study writes it (quoted option values)."""
    plain = sampler.replace("'", "")
    return FINDINGS.get(plain, "")
