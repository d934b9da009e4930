"""diffusers' schedulers as study entries, run in diffusers' own loop::

    scheduler.set_timesteps(N)
    for t in scheduler.timesteps:
        x = scheduler.step(network(scheduler.scale_model_input(x, t), t), t, x).prev_sample

**The exact network.** diffusers' schedulers address a network by a timestep τ of a discrete
training table ᾱ_τ (σ_τ = √((1 − ᾱ_τ)/ᾱ_τ)). The table is built from the study's schedule: its
``train_steps`` σ's are log-uniform between σ(t_min) and σ(t_max) (``trained_betas`` =
1 − ᾱ_τ/ᾱ_{τ−1}), so τ ∝ log σ and the scheduler's default "linspace" spacing is sdebench's
``logsnr`` grid. At a τ between nodes the network reads σ by interpolating log σ of the
scheduler's own (float32) table linearly — k-diffusion's convention and diffusers'
``_sigma_to_t`` — and returns the exact ε̂ = (x̃ − D(x̃; σ))/σ from the problem's denoiser, with
x̃ = x_τ √(1 + σ²) (the ε-prediction network a VP model is trained to be), or with
``prediction_type="v_prediction"`` v = √ᾱ ε − √(1 − ᾱ) x̂₀ (Salimans & Ho 2022). The EDM schedulers
instead call F(c_in x̃, c_noise = ¼ ln σ) with D = c_skip x̃ + c_out F (Karras et al. 2022,
Table 1; diffusers' ``precondition_outputs``; c_out < 0 for a v-prediction F); the exact F
follows from D. CosineDPMSolverMultistep (Stable Audio Open) reads c_noise = atan(σ)·2/π.

**Other loops and noise.** KarrasVe and ScoreSdeVe have no ``step`` loop: their deprecated
pipelines' loops run instead (:mod:`sdebench.peers.pipeline_loops`), with a network addressed by
σ itself (state ``sigma``). DPMSolverSDE and CosineDPMSolverMultistep draw their noise from
torchsde's Brownian tree in σ (their ``noise_sampler``): the probe serves it as increments of one
Brownian path, as for k-diffusion; the library's own tree is seeded from the study's seed.

**Settings that make a scheduler solve the study's problem** (recorded with every result and
overridable as spec parameters): the table above; ``final_sigmas_type = "sigma_min"``, so the
output lies at σ(t_min) where the study measures it (the default "zero" jumps to the data);
for DDIM ``set_alpha_to_one = False``, ``timestep_spacing = "trailing"`` (its default "leading"
never starts at τ = T − 1, so its first step starts at a σ below the start's; Lin et al. 2024,
Table 2) and ``clip_sample = False`` (clipping x̂₀ to [−1, 1] is wrong for data outside it). A
train table of 1024 nodes makes every power-of-two step count divide it, as DDIM's
``prev_timestep = t − T // N`` needs. Heun always appends σ = 0: its output lies at σ = 0.

**The table's limits.** A scheduler that steps on the timesteps of its training table of T =
``train_steps`` entries either lands on entries or interpolates between them, and each declares
which (``table``):

* ``entries`` (DDIM: N integer timesteps, then its final ᾱ) and ``nodes`` (DPM-Solver multistep
  and singlestep, UniPC: N + 1 integer timesteps ``linspace(0, T − 1, N + 1).round()``, the last
  at σ_min) have no interpolation error, but only T (entries) or T − 1 (nodes) distinct steps:
  beyond that, steps repeat a timestep (zero-length steps; DPM-Solver's multistep raised
  IndexError at 2048 steps of 1024). A larger step count is refused before any unit runs,
  naming the limit (:meth:`DiffusersSampler.check_steps`); ``train_steps`` raises it.
* ``interpolated`` (Euler, Heun: fractional "linspace" timesteps τ): the scheduler steps with σ
  interpolated linearly in σ between entries (np.interp), while the network reads σ at the same
  τ linearly in log σ. On a log-uniform table of spacing h = ln(σ_max/σ_min)/(T − 1) the two
  differ by a relative h² w(1 − w)/2 within a cell (w ∈ [0, 1] the position in it; at most h²/8,
  h²/12 on average), so the continuous limit N → ∞ is not the study's ODE: its error is a floor
  that no step count removes (:meth:`DiffusersSampler.error_floor`).

**Stock tables.** On a ``table`` schedule (``table:beta_schedule=scaled_linear:beta_start=0.00085:
beta_end=0.012``, Stable Diffusion's; :mod:`sdebench.theory.beta_tables`) a scheduler is given no
table: it builds its own from those keywords (``beta_schedule``, ``beta_start``, ``beta_end``,
``num_train_timesteps``), in float32, as it ships, and steps on its timesteps; the schedule's σ
equals that table's at both ends, so the start law is p at its largest σ and the truth p at its
smallest (a float32 table's σ's differ from the exact ones by up to 8e-5 relative, 1e-5 for
Stable Diffusion's, near σ_min: below the float32 floors). Those keywords are refused as options
(the schedule sets them), and so is ``train_steps`` there. The settings above still apply unless
a spec sets them; the audit's stage of Stable Diffusion's configurations sets its own.

**Zero terminal SNR** (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
Flawed"). On a schedule with a pure-noise end (vp0snr) the table is DDPM-style instead: σ(t_τ) at
t_τ uniform in [t_min, t_max], its last ᾱ exactly 0 (:func:`sigma_table`); the VP state x_τ =
x/√(s² + (sσ)²) and the network, written with √ᾱ and √(1 − ᾱ), stay finite there, so the VP
schedulers may start at pure noise and the study measures whether their step can: DDIM (its
trailing spacing starts on that entry) needs v-prediction, since an ε-prediction's x̂₀ = (x − √(1 −
ᾱ) ε)/√ᾱ divides by 0 (Lin et al., §3.2); DPM-Solver and UniPC need
``rescale_betas_zero_snr=True``, whose clamp of that ᾱ to 2⁻²⁴ makes them start at σ ≈ 4096,
reading the pure noise as their state there — a floor no step count removes
(:meth:`DiffusersSampler.clamped_start_limit_law`).

**IPNDM** (state ``cosine``) also runs its own grid from pure noise (α = 0) to the data, with a
v-prediction network: it is judged like the flow schedulers below, against the data law, on a
schedule with a pure-noise end.

**Flow matching** (state ``flow``: FlowMatchEuler/Heun, and DPMSolverMultistep, UniPC, DEIS or
SA-Solver with ``use_flow_sigmas=True``). These schedulers keep x_f = (1 − σ_f) x₀ + σ_f ε, σ_f ∈
[0, 1], and call a network v(x_f, timestep) = ε − x₀ at timestep = σ_f · T (T =
``num_train_timesteps``, 1000). Any schedule is one of these: x_f = x/(s + sσ) and σ_f = sσ/(s +
sσ) = σ/(1 + σ) (on rf, x_f = x and σ_f = t). The exact network reads σ_f = timestep/T, the study's
time t of that σ_f, and returns v = (x_f − D(x; t))/σ_f, D the problem's denoiser — what diffusers'
``flow_prediction`` means (its x̂₀ = x_f − σ_f v). They run in their **stock** configuration, on
their own grids: FlowMatchEuler/Heun from σ_f = 1 down to its shifted 1/T, then a jump to σ_f = 0;
the multistep solvers' flow modes from just below 1 — DPMSolverMultistep, DEIS and SA-Solver the
shifted 1 − 1/T, UniPC 1 − 10⁻⁶ — so they read the pure noise they are given as x_f at that σ_f,
down to σ_f = 0 (DPMSolverMultistep, UniPC) or to their last σ_f, (1 − 1/T)/N, repeated (DEIS,
SA-Solver). A flow pipeline decodes the scheduler's last state as the sample, so their output is
judged against the data law, p at σ = 0 (:meth:`DiffusersSampler.output_time`), not at the study's
t_min; hence only schedules with a pure-noise end (rf, ``rf:shift=…``, vp0snr) and problems with an
exact law or exact samples there (gaussian, gmm). The multistep solvers' flow modes pass
**integer** timesteps ⌊σ_f T⌋ (int64): the network sees a time up to 1/T below the σ_f they step
with, an error no step count removes (their ``convention`` says so).

**Precision.** diffusers keeps σ tables and step coefficients in float32 and casts the state to
float32 inside ``step`` (DPMSolverMultistep, Euler, EDMEuler: "Upcast to avoid precision
issues"), so its samplers are float32 methods whatever the state's dtype: ``precision =
float32`` sets their round-off floor and the probe's affinity tolerance.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import math
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from sdebench.peers.base import PeerSampler, PeerUnavailable, ProbeNoise
from sdebench.peers.options import typed_options
from sdebench.peers.pipeline_loops import karras_ve_loop, score_sde_ve_loop
from sdebench.problems.law import ExactLawNoise, GaussianLaw
from sdebench.problems.protocol import EXACT_LAW
from sdebench.registry import SpecError
from sdebench.seeding import derive_seed
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.loop import sample

TRAIN_STEPS = 1024
FLOW_TRAIN_STEPS = 1000  # diffusers' num_train_timesteps, the flow modes' T
EDM = "edm"
VP = "vp"
VE = "ve"
FLOW = "flow"
COSINE = "cosine"
SIGMA = "sigma"
RANDN_TENSOR = "randn_tensor"
NOISE_SAMPLER = "noise_sampler"
ENTRIES, NODES, INTERPOLATED = "entries", "nodes", "interpolated"

TABLE_FLOOR_MULTIPLE = 15
"""The floor recorded for an ``interpolated`` scheduler is TABLE_FLOOR_MULTIPLE · F, F the exact
W₂ error of its continuous limit (:meth:`DiffusersSampler.error_floor`). At N steps the table's
share of the error is F's integral of the σ mismatch sampled at the N timesteps instead, at most
1.5 F (the mismatch's largest value over its mean, (h²/8)/(h²/12)), so a value above 15 F is
discretisation error to within a tenth (the margin :mod:`sdebench.studies.reference` keeps from
its reference solve is the same 1/15 of F)."""

LIMIT_STEP = 0.02
"""The largest step in log σ of the rk4 solve of a scheduler's continuous limit
(:meth:`DiffusersSampler.limit_grid`). Its error against the floor F it measures: 3e-10 against
2e-5 for T = 1024 (h = 0.010, one step per cell), 1.8e-5 against 5.5e-3 for T = 64 (h = 0.17) in
one step per cell, below F/1000 in steps of 0.02 (tests/test_peer_options.py)."""

_LIMIT_ERRORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Scheduler:
    """One diffusers scheduler: the form of its state (``vp``: x_τ = √ᾱ x₀ + √(1 − ᾱ) ε;
    ``ve``: x̃ = x₀ + σ ε with a VP network; ``edm``: x̃ with an EDM-preconditioned network whose
    c_noise ``noise_level`` turns into σ; ``sigma``: x̃ with a network addressed by σ itself, the
    deprecated VE pipelines' loops; ``flow``: x_f = (1 − σ_f) x₀ + σ_f ε with a velocity network,
    module docstring "Flow matching"), the settings of the module docstring, and its
    declarations as functions of its options (``order_note``: why the error does not vanish,
    where ``order`` is None; ``refusal``: why the options cannot be judged on exact answers).

    ``loop``: the pipeline's loop where it is not the ``step`` loop of the module docstring
    (:mod:`sdebench.peers.pipeline_loops`); ``ends``: the constructor keywords of a scheduler set
    by its σ range (σ(t_min), σ(t_max)) instead of a training table; ``noise_argument``: how it
    takes noise — ``step``'s keyword (``variance_noise``), its module's ``randn_tensor``, or its
    ``noise_sampler`` attribute (torchsde's Brownian tree in σ: the probe serves it as
    increments of one Brownian path, :class:`sdebench.peers.base.ProbeNoise`)."""

    state: str
    settings: dict
    order: object
    order_source: object
    twin: object = lambda options: ""
    nfe_per_step: float = 1
    stochastic: object = lambda options: False
    convention: str = ""
    noise_argument: str = ""
    choices: tuple = ()  # (option, the values declared for, why others are refused)
    table: str = ""  # how it reads its training table (module docstring, "The table's limits")
    ends_at_zero: bool = False
    order_note: object = lambda options: ""
    loop: object = None
    ends: object = None
    noise_level: object = lambda c_noise: torch.exp(4 * c_noise)  # EDM: c_noise = ¼ ln σ
    refusal: object = lambda options: ""
    module: str = ""  # where the class lives, if diffusers' top level does not export it
    option_conventions: tuple = ()  # ((option, value), what that value changes), as convention


_FINAL = {"final_sigmas_type": "sigma_min"}
# the constructor keywords of a training table: the study's schedule sets them (sigma_table)
_TABLE_OPTIONS = {"beta_schedule", "beta_start", "beta_end", "trained_betas",
                  "num_train_timesteps"}
_FLOW_MODE_OPTIONS = {"use_flow_sigmas", "flow_shift", "prediction_type", "mu"}
# options that set the network's form or the table's zero-SNR end, not the method
_FORM_OPTIONS = _FLOW_MODE_OPTIONS | {"rescale_betas_zero_snr"}
_FLOW_MODE_CONVENTION = (
    "flow mode (use_flow_sigmas): starts below σ_f = 1 (DPMSolverMultistep at the shifted "
    "1 − 1/T, UniPC at 1 − 1e-6), so the pure noise it is given is read as x_f there; its int64 "
    "timesteps ⌊σ_f T⌋ put the network up to 1/T below the σ_f it steps with; ends at σ_f = 0 "
    "(final_sigmas_type 'zero', its default)")
# diffusers 0.42.1 sets alphas_cumprod[-1] = 2**-24 under rescale_betas_zero_snr in these
_CLAMPS_ZERO_SNR = {"DPMSolverMultistepScheduler", "UniPCMultistepScheduler",
                    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler"}
_ZERO_SNR_CLAMP = (
    "rescale_betas_zero_snr clamps a zero-SNR table's last ᾱ to 2⁻²⁴ (σ ≈ 4096, 'so first sigma "
    "is not inf'): it starts there, reading the pure noise it is given as its state")
_EDM_THREE = "Karras et al. 2022, §3"
_DPM_SOURCES = {1: "Lu et al. 2022b: first order, equivalent to DDIM (diffusers docstring)",
                2: "Lu et al. 2022b, Alg. 2: second-order multistep (diffusers docstring)",
                3: "Lu et al. 2022b, §4: third-order multistep (diffusers docstring)"}


def _sigma_range(sigma_min: float, sigma_max: float) -> dict:
    """A scheduler set by its σ range (EDM's, the VE pipelines'): the study's."""
    return {"sigma_min": sigma_min, "sigma_max": sigma_max}


def _karras_ve_range(sigma_min: float, sigma_max: float) -> dict:
    """KarrasVe's schedule runs from sigma_max² to sigma_min² (its ``convention``): the square
    roots of the study's σ range."""
    return {"sigma_min": math.sqrt(sigma_min), "sigma_max": math.sqrt(sigma_max)}


def _churns(options: dict) -> bool:
    return float(options.get("s_churn", 80.0)) != 0


def _score_sde_ve_refusal(options: dict) -> str:
    if int(options.get("correct_steps", 1)) == 0:
        return ""
    return ("its Langevin corrector (correct_steps ≥ 1; Song et al. 2021, Alg. 4) takes the step "
            "size 2(snr·‖z‖/‖∇log p‖)² from the batch's mean norms: not affine in the state, and "
            "each row's step depends on the other rows, so no exact output law can be probed "
            "(nor an order: snr, not the grid, sets its bias); judged with correct_steps=0")


_ROUNDED = ("its timesteps are its σ's positions in the table rounded to integers: the network "
            "reads σ up to half a table cell from the σ it steps with, an error of varying sign "
            "that no step count removes")
_TRUNCATED = ("its fractional timesteps are truncated by the int64 cast (use_karras_sigmas and "
              "use_lu_lambdas round them): the network reads σ up to a table cell below the σ "
              "it steps with, an error no step count removes (a defect: "
              "experiments/findings/fractional_timesteps_truncated.py)")
_SIGMA_OPTION_CONVENTIONS = (
    (("use_karras_sigmas", True), f"use_karras_sigmas: {_ROUNDED}"),
    (("use_lu_lambdas", True), f"use_lu_lambdas: {_ROUNDED}"),
    (("use_exponential_sigmas", True), f"use_exponential_sigmas: {_TRUNCATED}"),
    (("use_beta_sigmas", True), f"use_beta_sigmas: {_TRUNCATED}"),
    (("timestep_spacing", "leading"), "leading spacing: its first timestep N⌊T/(N + 1)⌋ + "
     "steps_offset lies below T − 1, further below as N grows (768 of 1023 at 256 steps), so "
     "it reads the start as its state at that smaller σ (Lin et al. 2024, Table 2)"),
)


_ORDERS_1_TO_3 = ("solver_order", (1, 2, 3), "its step has branches for orders 1 to 3 only: "
                  "another value would run as one of them, against the order it declares")


def _solver_order(options: dict, default: int = 2) -> int:
    return int(options.get("solver_order", default))


def _same_method(options: dict, keeping: set) -> bool:
    """Whether the options change nothing but ``keeping`` (and the algorithm type between
    DPM-Solver++ and its SDE variant): any other option (an ε-prediction algorithm, another
    solver_type, …) may be another method, so no sdebench twin is claimed."""
    algorithm = options.get("algorithm_type", "dpmsolver++")
    return algorithm in ("dpmsolver++", "sde-dpmsolver++") and set(options) <= keeping | {
        "algorithm_type"}


def _is_sde(options: dict) -> bool:
    return options.get("algorithm_type", "dpmsolver++") in ("sde-dpmsolver++", "sde-dpmsolver")


def _is_stochastic_flow(options: dict) -> bool:
    return bool(options.get("stochastic_sampling"))


SCHEDULERS = {
    "EulerDiscreteScheduler": Scheduler(
        VE, dict(_FINAL), lambda o: 1, lambda o: f"{_EDM_THREE}: Euler's method, first order",
        twin=lambda o: "euler", convention="σ at its fractional timesteps is interpolated linearly "
        "in σ (np.interp), while σ → timestep (_sigma_to_t) and the network are linear in log σ; "
        "steps x̃ = x/s in σ, sdebench's euler x in t (the same where s = 1, σ = t: edm)",
        table=INTERPOLATED),
    "HeunDiscreteScheduler": Scheduler(
        VE, {}, lambda o: 2, lambda o: f"{_EDM_THREE} and Alg. 1: Heun's method, O(h³) local "
        "error", twin=lambda o: "heun", nfe_per_step=2,
        convention="always ends with an Euler step to σ = 0 (no final_sigmas_type): its output "
        "is at σ = 0, the study's truth at σ(t_min)", table=INTERPOLATED, ends_at_zero=True),
    "DDIMScheduler": Scheduler(
        VP, {"set_alpha_to_one": False, "timestep_spacing": "trailing", "clip_sample": False},
        lambda o: 1, lambda o: "Song, Meng & Ermon 2021, §4.3 eq. 13–14 (Euler on the ODE in "
        "(σ, x/s)); Lu et al. 2022, §4.1: DDIM = DPM-Solver-1",
        twin=lambda o: ({0.0: "ddim", 1.0: "ancestral"}.get(float(o.get("eta", 0.0)), "")
                        if _same_method(o, {"eta"}) else ""), noise_argument="variance_noise",
        stochastic=lambda o: bool(o.get("eta")), table=ENTRIES,
        option_conventions=((("timestep_spacing", "linspace"), "linspace spacing: its "
                             "timesteps are round(k(T − 1)/(N − 1)) but each step goes to "
                             "t − ⌊T/N⌋ (146 or 147 apart against 128 at 8 steps), so the next "
                             "step reads the state it reached at another σ"),),
        convention="ε-prediction in x_τ = √ᾱ x₀ + √(1 − ᾱ) ε with float32 ᾱ"),
    "DPMSolverMultistepScheduler": Scheduler(
        VP, dict(_FINAL),
        lambda o: (2 if _solver_order(o) >= 2 else 1) if _is_sde(o) else _solver_order(o),
        lambda o: ("the same method as sdebench's dpmpp_2m_sde (agreement column); Lu et al. "
                   "2022b §5" if _is_sde(o) and _solver_order(o) == 2 else
                   "DDIM with η = 1 in λ (first-order SDE-DPM-Solver++)" if _is_sde(o)
                   else _DPM_SOURCES.get(_solver_order(o), "")),
        twin=lambda o: {(False, 2): "dpmpp_2m", (True, 2): "dpmpp_2m_sde",
                        (True, 1): "ancestral", (False, 1): "ddim"}.get(
            (_is_sde(o), _solver_order(o)), "") if _same_method(o, {"solver_order"}) else "",
        stochastic=_is_sde, noise_argument="variance_noise", choices=(_ORDERS_1_TO_3,),
        table=NODES, option_conventions=_SIGMA_OPTION_CONVENTIONS,
        convention="lower_order_final (default True): below 15 steps its last step is first "
        "order, sdebench's is not"),
    "DPMSolverSinglestepScheduler": Scheduler(
        VP, dict(_FINAL), lambda o: _solver_order(o),
        lambda o: f"Lu et al. 2022, Thm. 3.2 (DPM-Solver-{_solver_order(o)}), DPM-Solver++ "
        "data-prediction form (Lu et al. 2022b, Alg. 1)",
        choices=(_ORDERS_1_TO_3, ("algorithm_type", ("dpmsolver++", "dpmsolver"),
                                  "its SDE variant draws noise, and sdebench declares no "
                                  "stochastic form or order for it")), table=NODES,
        convention="a k-th order step spans k grid intervals (orders cycle 1, 2, …, k)"),
    "UniPCMultistepScheduler": Scheduler(
        VP, dict(_FINAL), lambda o: _solver_order(o) + 1,
        lambda o: "diffusers docstring: 'the effective order of accuracy is solver_order + 1 "
        "due to the UniC' (Zhao et al. 2023)", twin=lambda o: "unipc_bh2" if _solver_order(o) == 2
        and _same_method(o, {"solver_order"}) else "", table=NODES,
        convention="lower_order_final (default True): its last step is first order at every "
        "step count, sdebench's unipc_bh2 keeps order 2"),
    "EulerAncestralDiscreteScheduler": Scheduler(
        VE, {}, lambda o: 1, lambda o: "the same method as k-diffusion's sample_euler_ancestral "
        "and sdebench's ancestral in σ (DDIM with η = 1, Song, Meng & Ermon 2021, §4.1): weak "
        "order 1", stochastic=lambda o: True, noise_argument=RANDN_TENSOR, table=INTERPOLATED,
        ends_at_zero=True, convention="ancestral steps in σ interpolated linearly between the "
        "table's entries (as Euler); always ends at σ = 0"),
    "LMSDiscreteScheduler": Scheduler(
        VE, {}, lambda o: 4, lambda o: "k-diffusion's sample_lms (its `order` argument, 4 by "
        "default in step): Adams–Bashforth on the variable grid, weights by quadrature",
        table=INTERPOLATED, ends_at_zero=True, order_note=lambda o: "",
        convention="its first steps use orders 1, 2, 3 (start-up); always ends at σ = 0"),
    "KDPM2DiscreteScheduler": Scheduler(
        VE, {}, lambda o: 2, lambda o: "k-diffusion's sample_dpm_2: the midpoint step in log σ "
        "of DPM-Solver-2 (Lu et al. 2022, Thm. 3.2: order 2)", nfe_per_step=2,
        table=INTERPOLATED, ends_at_zero=True,
        convention="its last step, to σ = 0, is an Euler step (as Heun's)"),
    "KDPM2AncestralDiscreteScheduler": Scheduler(
        VE, {}, lambda o: None, lambda o: "", stochastic=lambda o: True,
        noise_argument=RANDN_TENSOR, nfe_per_step=2, table=INTERPOLATED, ends_at_zero=True,
        order_note=lambda o: "no weak order is documented for DPM-2 with ancestral noise "
        "(k-diffusion's sample_dpm_2_ancestral); sdebench declares none and reports the error",
        convention="DPM-2 to σ_down, then noise σ_up (η = 1); always ends at σ = 0"),
    "DDPMScheduler": Scheduler(
        VP, {"timestep_spacing": "trailing", "clip_sample": False}, lambda o: 1,
        lambda o: "Ho et al. 2020, Alg. 2 (ancestral sampling), on a subsequence of timesteps "
        "the posterior step of DDIM with η = 1 (Song, Meng & Ermon 2021, §4.1): weak order 1",
        stochastic=lambda o: True, noise_argument=RANDN_TENSOR, table=ENTRIES,
        convention="its last step goes to ᾱ = 1 (σ = 0, no set_alpha_to_one), one entry below "
        "the study's t_min, so sdebench's ancestral, which ends there, is no twin"),
    "PNDMScheduler": Scheduler(
        VP, {"set_alpha_to_one": False, "timestep_spacing": "trailing"}, lambda o: None,
        lambda o: "", table=ENTRIES,
        order_note=lambda o: "PNDM (Liu et al. 2022): pseudo Runge–Kutta warm-up, then the "
        "pseudo linear multistep method (PLMS; skip_prk_steps=True starts it at once); sdebench "
        "declares no order for it (none verified) and reports the measured one",
        convention="its PRK warm-up steps on half intervals (repeated timesteps); ends at its "
        "final ᾱ (set_alpha_to_one=False: the table's first entry)"),
    "IPNDMScheduler": Scheduler(
        COSINE, {}, lambda o: 4, lambda o: "diffusers docstring: 'A fourth-order Improved Pseudo "
        "Linear Multistep scheduler' (iPNDM: Adams–Bashforth 4 on ε in a DDIM step)",
        convention="its own grid from pure noise (α = 0) to the data: σ = sin²(πs/2), "
        "α = √(1 − σ²) for s uniform in [0, 1]; a v-prediction network called with "
        "atan2(σ, α)·2/π; its output is judged at the data"),
    "EDMDPMSolverMultistepScheduler": Scheduler(
        EDM, dict(_FINAL), lambda o: _solver_order(o), lambda o: _DPM_SOURCES.get(
            _solver_order(o), ""), twin=lambda o: "dpmpp_2m" if _solver_order(o) == 2 and
        _same_method(o, {"solver_order"}) else "", choices=(_ORDERS_1_TO_3,), ends=_sigma_range,
        convention="EDM's ρ = 7 grid with N σ's (N − 1 steps and a last step from its σ_min to "
        "its config's σ_min, one ulp apart, on which lower_order_final acts)"),
    "DEISMultistepScheduler": Scheduler(
        VP, {}, lambda o: _solver_order(o),
        lambda o: f"Zhang & Chen 2023 (DEIS): the exponential integrator with ε extrapolated "
        f"by a polynomial of degree {_solver_order(o) - 1} over its last {_solver_order(o)} "
        f"network values (diffusers' 'logrho' form): order {_solver_order(o)}"
        + ("; DEIS-1 is DDIM (ibid., §4)" if _solver_order(o) == 1 else ""),
        twin=lambda o: "ddim" if _solver_order(o) == 1 and set(o) <= {"solver_order"} else "",
        choices=(_ORDERS_1_TO_3,), table=NODES,
        convention="lower_order_final (default True): below 15 steps its last steps are of lower "
        "order; no final_sigmas_type: it ends at the table's smallest σ (VP) or, in flow mode, "
        "repeats its last σ_f"),
    "SASolverScheduler": Scheduler(
        VP, {}, lambda o: None, lambda o: "", stochastic=lambda o: True,
        noise_argument=RANDN_TENSOR, table=NODES,
        order_note=lambda o: "no weak order is documented for its default τ (the SDE on "
        "timesteps 200–800, the ODE elsewhere: Xue et al. 2023, SA-Solver); sdebench declares "
        "none and reports the error",
        convention="stochastic Adams predictor–corrector (Xue et al. 2023), τ = 1 on timesteps "
        "200–800 of its table, 0 elsewhere; draws its noise itself (randn_tensor)"),
    "FlowMatchEulerDiscreteScheduler": Scheduler(
        FLOW, {}, lambda o: None if _is_stochastic_flow(o) else 1,
        lambda o: "" if _is_stochastic_flow(o) else "Lipman et al. 2023, §4; Esser et al. 2024, "
        "§2: Euler's method on the flow ODE dx_f/dσ_f = v, first order",
        twin=lambda o: "" if _is_stochastic_flow(o) else "ddim",
        stochastic=_is_stochastic_flow, noise_argument=RANDN_TENSOR,
        order_note=lambda o: "stochastic_sampling re-noises x̂₀ = x_f − σ_f v with fresh noise at "
        "every σ_f' (consistency models' multistep sampling, Song et al. 2023, Alg. 1): not a "
        "discretisation of the reverse SDE, whose marginals it does not keep as steps shrink"
        if _is_stochastic_flow(o) else "",
        convention="Euler in σ_f on x_f = x/(s + sσ), which is DDIM on the same σ's (theory/"
        "claims/flow.py); float32 σ_f; its last step jumps to σ_f = 0 (x̂₀ = x_f − σ_f v), so "
        "its output is judged against the data law"),
    "FlowMatchHeunDiscreteScheduler": Scheduler(
        FLOW, {}, lambda o: 2, lambda o: "Karras et al. 2022, Alg. 1 in σ_f on the flow ODE: "
        "Heun's method, O(h³) local error", twin=lambda o: "heun", nfe_per_step=2,
        convention="Heun in σ_f on x_f = x/(s + sσ), sdebench's heun in t (the same on rf, "
        "where σ_f = t); its last step, from its smallest σ_f to 0, is an Euler step of a fixed "
        "size (shifted 1/T) at every step count"),
    "EDMEulerScheduler": Scheduler(
        EDM, dict(_FINAL), lambda o: 1, lambda o: f"{_EDM_THREE}: Euler's method, first order",
        twin=lambda o: "euler", ends=_sigma_range,
        convention="EDM's ρ = 7 grid with N σ's (N − 1 steps and a zero-length last step under "
        "final_sigmas_type='sigma_min'); the network reads c_noise = ¼ ln σ in float32"),
    "DPMSolverSDEScheduler": Scheduler(
        VE, {}, lambda o: None, lambda o: "", stochastic=lambda o: True,
        noise_argument=NOISE_SAMPLER, nfe_per_step=2, table=INTERPOLATED, ends_at_zero=True,
        order_note=lambda o: "no weak order is documented for DPM-Solver++ SDE (its docstring: "
        "'inspired by the stochastic sampler from Karras et al.'; k-diffusion's "
        "sample_dpmpp_sde, which it ports); sdebench declares none and reports the error",
        convention="k-diffusion's sample_dpmpp_sde (r = ½, η = 1) on σ's interpolated linearly "
        "in σ between the table's entries; torchsde's Brownian tree in σ, two overlapping draws "
        "a step; always ends at σ = 0 with an Euler step"),
    "CosineDPMSolverMultistepScheduler": Scheduler(
        EDM, {}, lambda o: _solver_order(o), lambda o: (
            "SDE-DPM-Solver++(2M) (Lu et al. 2022b, §5), sdebench's dpmpp_2m_sde in x̃ (α = 1)"
            if _solver_order(o) == 2 else "DDIM with η = 1 in λ (first-order SDE-DPM-Solver++)"),
        stochastic=lambda o: True, noise_argument=NOISE_SAMPLER, ends_at_zero=True,
        ends=_sigma_range, choices=(("solver_order", (1, 2), "its step has branches for orders "
                                     "1 and 2 only"),),
        noise_level=lambda c_noise: torch.tan(c_noise * (math.pi / 2)),
        convention="Stable Audio Open's sampler (Evans et al. 2024): SDE-DPM-Solver++ on EDM's "
        "x̃ = x₀ + σε, σ log-uniform, a v-prediction network with c_noise = atan(σ)·2/π (the "
        "cosine schedule's time); torchsde's Brownian tree in σ; final_sigmas_type 'zero' (its "
        "default): its last step, first order, ends at σ = 0 ('sigma_min' appends σ_min to a "
        "grid that ends there: a zero-length last step whose noise query sends the tree into "
        "endless recursion, a defect: experiments/findings/cosine_dpmsolver_final_step.py)"),
    "ScoreSdeVeScheduler": Scheduler(
        SIGMA, {}, lambda o: 1, lambda o: "Song et al. 2021, App. E, eq. 46: the reverse-"
        "diffusion predictor (Euler–Maruyama-type on the reverse VE SDE), weak order 1",
        stochastic=lambda o: True, noise_argument=RANDN_TENSOR, ends_at_zero=True,
        loop=score_sde_ve_loop, ends=_sigma_range, refusal=_score_sde_ve_refusal,
        convention="its pipeline's loop (deprecated ScoreSdeVePipeline): N geometric σ's, the "
        "network called at its continuous sigmas[i] (above the step's discrete σ by a factor "
        "(σ_max/σ_min)^(i·ε/(N−1)), ε = sampling_eps), then a last step to σ = 0 whose mean, "
        "Tweedie's denoiser, is the output"),
    "KarrasVeScheduler": Scheduler(
        SIGMA, {"s_noise": 1.0}, lambda o: None if _churns(o) else 2,
        lambda o: "" if _churns(o) else f"{_EDM_THREE} and Alg. 1 (s_churn = 0): Heun's "
        "method, O(h³) local error", stochastic=_churns, noise_argument=RANDN_TENSOR,
        nfe_per_step=2, ends_at_zero=True, loop=karras_ve_loop, ends=_karras_ve_range,
        # diffusers exports a dummy for it unless transformers is installed (the guard of its
        # deprecated package), though the scheduler needs torch alone
        module="diffusers.schedulers.deprecated.scheduling_karras_ve",
        order_note=lambda o: "Karras et al. 2022, Alg. 2 (churn γ = min(S_churn/N, √2 − 1) "
        "on σ in [S_min, S_max]) declares no weak order; sdebench declares none and reports "
        "the error" if _churns(o) else "",
        convention="its pipeline's loop (deprecated KarrasVePipeline); its schedule holds "
        "t_i = σ_max²(σ_min²/σ_max²)^(i/(N−1)), Karras et al.'s Table 1 VE times (σ = √t), "
        "which the pipeline steps as σ's: the grid runs from sigma_max² to sigma_min² (sdebench "
        "sets sigma_max = √σ(t_max), sigma_min = √σ(t_min)) while its init_noise_sigma is "
        "sigma_max (a defect: experiments/findings/karras_ve_schedule_squared.py); s_noise = 1 "
        "(its default 1.007 inflates every churn: no convergence to the truth); always ends at "
        "σ = 0 with an Euler step"),
}
_PARALLEL = ("; its Parallel variant (ParaDiGMS, Shih et al. 2023) shares this step, and adds "
             "batch_step_no_noise for a window of timesteps at once")
SCHEDULERS.update({
    f"{name}ParallelScheduler": replace(SCHEDULERS[f"{name}Scheduler"],
                                        convention=SCHEDULERS[f"{name}Scheduler"].convention
                                        + _PARALLEL)
    for name in ("DDPM", "DDIM")})

INVERSE_SCHEDULERS = {
    "DDIMInverseScheduler": replace(
        SCHEDULERS["DDIMScheduler"], twin=lambda o: "", order_source=lambda o: "Song, Meng & "
        "Ermon 2021, §4.3 (DDIM's ODE run from the data to the noise): first order",
        convention="steps from ᾱ_{τ−T/N} to ᾱ_τ with its network called at the target τ (as "
        "diffusers' inversion pipelines call it), so the network sees a state one step away "
        "from its timestep"),
    "DPMSolverMultistepInverseScheduler": replace(
        SCHEDULERS["DPMSolverMultistepScheduler"], settings={},
        convention="the same nodes as DPMSolverMultistep's, from the smallest σ up to the "
        "table's largest; lower_order_final (default True): below 15 steps its last step is "
        "first order"),
}
"""The inversion schedulers (data → noise), run by :class:`sdebench.peers.inversion.RoundTrip`
and not registered as samplers: their declarations are those of the scheduler they invert."""


def _library():
    try:
        import diffusers
    except ImportError as error:
        raise PeerUnavailable("diffusers is not installed: pip install 'sdebench[peers]'") \
            from error
    return diffusers


def sigma_table(schedule, train_steps: int = TRAIN_STEPS) -> torch.Tensor:
    """σ_τ, τ = 0 … train_steps − 1 (float64): on a ``table`` schedule its own table, of its own
    size (module docstring, "Stock tables"); otherwise log-uniform between σ(t_min) and σ(t_max); for a
    schedule with a pure-noise end (σ(t_max) = ∞: vp0snr), σ(t_τ) at t_τ uniform in
    [t_min, t_max] — a DDPM-style table whose last entry has ᾱ = 0, the zero terminal SNR of
    Lin et al. 2024 (diffusers' ``rescale_betas_zero_snr`` then leaves it as it is, but for its
    clamp of that ᾱ to 2⁻²⁴)."""
    if schedule.table is not None:
        return torch.tensor(schedule.table.sigmas, dtype=torch.float64)
    numeric = schedule.numeric
    ends = torch.tensor([float(schedule.t_min), float(schedule.t_max)], dtype=torch.float64)
    if schedule.pure_noise_end:
        return numeric.sigma(torch.linspace(float(ends[0]), float(ends[1]), train_steps,
                                            dtype=torch.float64))
    ends = numeric.sigma(ends)
    return torch.exp(torch.linspace(float(ends[0].log()), float(ends[1].log()), train_steps,
                                    dtype=torch.float64))


def trained_betas(sigmas: torch.Tensor) -> list[float]:
    """β_τ with Π_{k≤τ}(1 − β_k) = ᾱ_τ = 1/(1 + σ_τ²)."""
    alphas_cumprod = 1 / (1 + sigmas**2)
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    return (1 - alphas_cumprod / previous).tolist()


class DiffusersSampler(PeerSampler):
    """``diffusers.<Scheduler>`` with its options (every constructor keyword, typed by its
    signature, :mod:`sdebench.peers.options`; ``eta`` for DDIM's step; ``mu`` for
    ``set_timesteps`` where it takes one (dynamic shifting); ``train_steps``, the size T of the
    table, except in flow mode, which keeps ``num_train_timesteps``); see the module docstring
    for the network, settings, the table's limits, flow matching and precision."""

    library = "diffusers"
    strong_order = None
    precision = torch.float32

    def __init__(self, method: str, train_steps: int = TRAIN_STEPS, **options):
        declared = {**SCHEDULERS, **INVERSE_SCHEDULERS}
        if method not in declared:
            raise SpecError(f"unknown diffusers scheduler {method!r}; expected one of "
                            f"{sorted(declared)}")
        self.method, self._declared = method, declared[method]
        self._class = getattr(importlib.import_module(self._declared.module)
                              if self._declared.module else _library(), method)
        parameters = dict(inspect.signature(self._class.__init__).parameters)
        parameters.pop("self")
        # the deprecated VE pipelines' schedulers have no ``step`` (ScoreSdeVe: step_pred)
        step = getattr(self._class, "step", None)
        self._step_parameters = inspect.signature(step).parameters if step else {}
        if "eta" in self._step_parameters:  # DDIM's η, an argument of its step
            parameters["eta"] = self._step_parameters["eta"]
        set_timesteps = inspect.signature(self._class.set_timesteps).parameters
        if "mu" in set_timesteps:
            parameters["mu"] = set_timesteps["mu"]
        parameters["train_steps"] = inspect.Parameter(
            "train_steps", inspect.Parameter.KEYWORD_ONLY, default=TRAIN_STEPS, annotation=int)
        options = typed_options({**options, "train_steps": train_steps}, parameters,
                                f"diffusers {method}")
        self.train_steps = options.pop("train_steps")
        self.mu = options.pop("mu", None)
        self.flow = self._declared.state == FLOW or bool(options.get("use_flow_sigmas"))
        table_options = sorted(set(options) & _TABLE_OPTIONS)
        if table_options and not self.flow:
            raise SpecError(f"diffusers {method}: {', '.join(table_options)} would set its "
                            "training table, which comes from the study's schedule: a table as "
                            "it ships is the schedule table:beta_schedule=…:beta_start=…:"
                            "beta_end=…:num_train_timesteps=… (module docstring, 'Stock tables')")
        if self.flow and self.train_steps != TRAIN_STEPS:
            raise SpecError(f"diffusers {method}: in flow mode the network's time is timestep/T "
                            "with T = num_train_timesteps (1000 unless given); train_steps sets "
                            "the VP table of the other modes")
        predictions = {"flow_prediction": "v = ε − x₀"} if self.flow else \
            {"epsilon": "ε", "v_prediction": "v = √ᾱ ε − √(1 − ᾱ) x₀"} \
            if self._declared.state in (VP, VE) else \
            {"epsilon": "F with c_out > 0", "v_prediction": "F with c_out < 0"} \
            if self._declared.state == EDM else {}
        if "prediction_type" in options and options["prediction_type"] not in predictions:
            raise SpecError(f"diffusers {method}: the exact network sdebench gives it predicts "
                            f"{' or '.join(f'{kind} ({name})' for kind, name in predictions.items()) or 'what its pipeline gives it'}"  # noqa: E501
                            f", so prediction_type={options['prediction_type']!r} would measure a "
                            "mismatched network, not the scheduler")
        for option, declared, why in self._declared.choices:
            if option in options and options[option] not in declared:
                raise SpecError(f"diffusers {method}: {option}={options[option]!r} is not one of "
                                f"{declared}: {why}")
        if self.train_steps < 2:
            raise SpecError(f"diffusers {method}: train_steps must be at least 2, got {train_steps!r}")
        self.options = dict(options)
        self.eta = float(options.get("eta", 0.0))

    @property
    def state(self) -> str:
        """The form of its state (:class:`Scheduler`): ``flow`` in flow mode, else declared."""
        return FLOW if self.flow else self._declared.state

    @property
    def from_pure_noise(self) -> bool:
        """Whether its own grid runs from pure noise to the data: flow mode (σ_f from 1 to 0)
        and IPNDM (α from 0 to 1); a pipeline decodes its last state as the sample."""
        return self.flow or self._declared.state == COSINE

    @property
    def handles_infinite_sigma(self) -> bool:
        """Its state stays finite at pure noise in flow mode (σ_f = 1) and in a VP state
        (x_τ = ε where ᾱ = 0: zero terminal SNR, its table's last entry); whether its step
        does is what a study of it measures (DDIM with ε-prediction divides by √ᾱ = 0)."""
        return self.from_pure_noise or self._declared.state == VP

    @property
    def stochastic(self) -> bool:
        return self._declared.stochastic(self.options)

    @property
    def noise_kind(self) -> str:
        """``brownian`` for a scheduler that takes a Brownian tree (``noise_sampler``), else
        ``independent`` (:class:`sdebench.peers.base.ProbeNoise`)."""
        return "brownian" if self._declared.noise_argument == NOISE_SAMPLER else "independent"

    @property
    def refusal(self) -> str:
        """Why these options cannot be judged on exact answers on any schedule ('' where they
        can): :meth:`schedule_refusal` gives it for every schedule."""
        return self._declared.refusal(self.options)

    @property
    def order_note(self) -> str:
        return self._declared.order_note(self.options)

    @property
    def order(self):
        return self._declared.order(self.options)

    @property
    def order_source(self) -> str:
        return self._declared.order_source(self.options)

    @property
    def twin(self) -> str:
        """The declared twin for the options that may make another method; the flow mode's,
        ``prediction_type`` and ``rescale_betas_zero_snr`` are not among them (they set the
        grid, the network's form or the table's zero-SNR end, and the twin runs on the peer's
        grid)."""
        return self._declared.twin({name: value for name, value in self.options.items()
                                    if name not in _FORM_OPTIONS})

    @property
    def convention(self) -> str:
        """Its declared convention, and what its flow mode, zero-SNR clamp or another option
        value (``option_conventions``) changes."""
        notes = [self._declared.convention]
        if self.flow and self._declared.state != FLOW:
            notes.append(_FLOW_MODE_CONVENTION)
        elif self.options.get("rescale_betas_zero_snr") and self.method in _CLAMPS_ZERO_SNR:
            notes.append(_ZERO_SNR_CLAMP)
        notes += [text for (option, value), text in self._declared.option_conventions
                  if option in self.options and self.options[option] == value]
        return "; ".join(notes)

    @property
    def steps_on(self) -> str:
        """The grid it steps on: its own timesteps, whatever the study's ``--grid`` (which still
        sets the start and end times)."""
        if self._declared.state == EDM:
            return ("its own σ grid (sigma_schedule and rho of its settings), not the study's "
                    "--grid")
        if self._declared.state == SIGMA:
            return "its own σ grid (geometric between its ends), not the study's --grid"
        if self.flow:
            return ("its own σ_f grid (its shift and sigma options), ending at σ_f = 0, not the "
                    "study's --grid")
        spacing = self._settings().get("timestep_spacing", "its default")
        return (f"its own timesteps ({spacing} spacing of its training table), not the study's "
                "--grid")

    @property
    def nfe_per_step(self) -> float:
        return self._declared.nfe_per_step

    def parameters(self) -> dict:
        table = {"mu": self.mu} if self.flow else {} if self.from_pure_noise else \
            {"train_steps": self.train_steps}
        return {"method": self.method, "version": importlib.metadata.version("diffusers"),
                **table, **self._settings()}

    def _settings(self) -> dict:
        settings = {**({} if self.flow else self._declared.settings), **self.options}
        settings.pop("eta", None)
        if self.flow and self._declared.state != FLOW:
            settings["prediction_type"] = "flow_prediction"
        elif self._declared.state in (VP, VE):
            settings.setdefault("prediction_type", "epsilon")
        return settings

    def _new_scheduler(self, schedule):
        """The scheduler on the study's training table (module docstring); one whose own grid
        runs from pure noise (:attr:`from_pure_noise`) keeps its stock table, and on a ``table``
        schedule it builds that table itself, as it ships ("Stock tables")."""
        if self.from_pure_noise:  # its own grid: the network's time is read from its timestep
            extra = {}
        elif self._declared.ends is not None:
            table = sigma_table(schedule, self.train_steps)
            extra = self._declared.ends(float(table[0]), float(table[-1]))
        elif schedule.table is not None:
            table = schedule.table
            extra = {"num_train_timesteps": table.num_train_timesteps,
                     "beta_schedule": table.beta_schedule,
                     "beta_start": float(table.beta_start), "beta_end": float(table.beta_end)}
        else:
            extra = {"num_train_timesteps": self.train_steps,
                     "trained_betas": trained_betas(sigma_table(schedule, self.train_steps))}
        return self._class(**extra, **self._settings())

    def _scheduler(self, schedule):
        """:meth:`_new_scheduler`, refused where its float32 table cannot hold the schedule's
        smallest σ (a unit fails with the reason; before, its outputs were NaN), and where it
        refuses the schedule (:meth:`check_schedule`)."""
        self.check_schedule(schedule)
        scheduler = self._new_scheduler(schedule)
        alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
        if alphas_cumprod is not None and bool((alphas_cumprod >= 1).any()):
            sigma_min = float(sigma_table(schedule, self._table_size(schedule))[0])
            raise ValueError(
                f"diffusers.{self.method} cannot represent {schedule.name!r}: at σ(t_min) = "
                f"{sigma_min:.3g} its float32 table rounds 1 − β = ᾱ_τ/ᾱ_τ₋₁ to 1 (β below "
                "float32's half-spacing below 1, 2⁻²⁵), so σ = 0 there; use a schedule whose "
                "σ(t_min) is above 2.5e-4")
        return scheduler

    @property
    def _ends_at_zero(self) -> bool:
        """Whether its last step goes to σ = 0: declared so (``ends_at_zero``), or
        ``final_sigmas_type = "zero"``, the stock value the module docstring's settings
        replace."""
        return self._declared.ends_at_zero or self._settings().get("final_sigmas_type") == "zero"

    def _table_size(self, schedule) -> int:
        """T of the table it steps on: a ``table`` schedule's own, else ``train_steps``."""
        return self.train_steps if schedule.table is None else schedule.table.num_train_timesteps

    def schedule_refusal(self, schedule) -> str:
        """Why it cannot run on ``schedule`` ('' where it can): its :attr:`refusal`, on every
        schedule; where its own grid starts at pure noise (:attr:`from_pure_noise`: σ_f ≈ 1, or
        IPNDM's α = 0), a schedule without a pure-noise end, whose start law is not there
        (module docstring, "Flow matching"); a ``train_steps`` beside a ``table`` schedule,
        which brings its own."""
        if self.refusal:
            return self.refusal
        if schedule.table is not None and self.train_steps != TRAIN_STEPS:
            return (f"{self.name}: train_steps={self.train_steps} sets the size of the table "
                    f"sdebench builds from a schedule, but {schedule.name!r} is a training table "
                    f"of its own ({schedule.table.num_train_timesteps} entries)")
        if not self.from_pure_noise or schedule.pure_noise_end:
            return ""
        start = "σ_f ≈ 1" if self.flow else "α = 0"
        return (f"{self.name} starts at pure noise ({start}), which {schedule.name!r} never "
                "reaches (s(t_max) ≠ 0); study it on a schedule with a pure-noise end: rf, "
                "rf:shift=3, vp0snr")

    def check_schedule(self, schedule) -> None:
        """Raise :meth:`schedule_refusal`'s reason as a spec error, where there is one."""
        reason = self.schedule_refusal(schedule)
        if reason:
            raise SpecError(reason)

    def _set_timesteps(self, scheduler, steps: int, device=None) -> None:
        """``set_timesteps(steps)``, with ``mu`` where it was given (dynamic shifting)."""
        extra = {} if self.mu is None else {"mu": self.mu}
        scheduler.set_timesteps(steps, device=device, **extra)

    def _scheduler_for(self, schedule, steps: int, device=None):
        """:meth:`_scheduler` with its timesteps set for ``steps`` (:meth:`_set_timesteps`),
        diffusers' notices silenced (:meth:`_quiet`)."""
        with self._quiet():
            scheduler = self._scheduler(schedule)
            self._set_timesteps(scheduler, steps, device=device)
        return scheduler

    def output_time(self, schedule, ts: torch.Tensor) -> torch.Tensor:
        """The study time t of its output: ts[-1], or t = 0, the data, where its own grid runs
        from pure noise (:attr:`from_pure_noise`): a pipeline decodes the scheduler's last state
        as the sample, wherever its grid stops (module docstring, "Flow matching")."""
        return torch.zeros_like(ts[-1]) if self.from_pure_noise else ts[-1]

    def max_steps(self, schedule) -> int | None:
        """The most steps it can take on its table's timesteps on ``schedule``: T (``entries``),
        T − 1 (``nodes``) or no limit (module docstring, "The table's limits")."""
        if self._declared.state == COSINE:
            return None
        if self.flow:  # its own T; the multistep flow modes' int timesteps repeat beyond T − 1
            return None if self._declared.state == FLOW else \
                int(self.options.get("num_train_timesteps", FLOW_TRAIN_STEPS)) - 1
        size = self._table_size(schedule)
        return {ENTRIES: size, NODES: size - 1}.get(self._declared.table)

    def check_steps(self, steps: int, schedule) -> None:
        """Refuse a step count beyond :meth:`max_steps`, naming the limit."""
        limit = self.max_steps(schedule)
        if limit is None or steps <= limit:
            return
        if self.flow:
            raise SpecError(f"{self.name} in flow mode passes integer timesteps ⌊σ_f T⌋ with T = "
                            f"num_train_timesteps = {limit + 1}: at most {limit} steps before "
                            f"they repeat, got {steps}")
        sets_size = f"the schedule {schedule.name!r} sets the table's size" \
            if schedule.table is not None else "the option train_steps sets the table's size"
        raise SpecError(f"{self.name} steps on the timesteps of its "
                        f"{self._table_size(schedule)}-entry training table: at most {limit} "
                        f"steps, got {steps} ({sets_size})")

    def check_options(self, schedule, steps: int | Sequence[int]) -> None:
        """Refuse the largest of ``steps`` beyond the table (:meth:`check_steps`), then make the
        scheduler for ``schedule`` and take the smallest's steps on one zero state with a zero
        network, so that an option value it rejects (``algorithm_type='bogus'``,
        ``solver_order=5``) stops the study before its first unit, naming the option."""
        counts = [steps] if isinstance(steps, int) else list(steps)
        self.check_steps(max(counts), schedule)
        steps = min(counts)
        try:
            with self._quiet(), torch.random.fork_rng(devices=[]):  # leaves torch's RNG as it was
                self.check_schedule(schedule)
                scheduler = self._new_scheduler(schedule)  # options only: a unit says the rest
                self._set_timesteps(scheduler, steps)
                state, generator = torch.zeros(1, 1), torch.Generator().manual_seed(0)
                self._loop(scheduler, lambda x, t: torch.zeros_like(x), state, None, generator)
        except SpecError:
            raise
        except Exception as error:  # whatever the library raises, said as a spec error
            raise SpecError(f"{self!r} cannot run {steps} steps on {schedule.name!r}: "
                            f"{type(error).__name__}: {error}") from error

    @contextlib.contextmanager
    def _quiet(self):
        """diffusers' log below errors (DPMSolverSinglestep warns on every set_timesteps),
        numpy 2's __array__(copy=) deprecation notice (every step) and torchsde's notice of a
        query a float ulp outside its tree's [σ_min, σ_max] silenced."""
        logging = _library().utils.logging
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="diffusers")
                warnings.filterwarnings("ignore", module="torchsde")
                yield
        finally:
            logging.set_verbosity(verbosity)

    def _step_arguments(self, state, noise: ProbeNoise | None, generator) -> dict:
        """``step``'s keywords: DDIM's eta; the noise of a stochastic scheduler (the probe's
        draw, or the library's own from ``generator``, where ``step`` takes one)."""
        arguments = {"eta": self.eta} if "eta" in self._step_parameters else {}
        if self.stochastic:
            if noise is not None and self._declared.noise_argument not in (RANDN_TENSOR,
                                                                           NOISE_SAMPLER):
                arguments[self._declared.noise_argument] = noise.draw(state)
            elif "generator" in self._step_parameters:
                arguments["generator"] = generator
        return arguments

    def _loop(self, scheduler, network, state, noise: ProbeNoise | None, generator):
        """diffusers' loop (module docstring) from ``state``, or its pipeline's own where it
        declares one (``loop``: the deprecated VE pipelines)."""
        if self._declared.loop is not None:
            return self._declared.loop(scheduler, network, state, generator)
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(state, t) \
                if hasattr(scheduler, "scale_model_input") else state  # flow: none
            prediction = network(model_input, t)
            state = scheduler.step(prediction, t, state,
                                   **self._step_arguments(state, noise, generator)).prev_sample
        return state

    def _serve_brownian_noise(self, scheduler, like, noise: ProbeNoise | None, seed: int) -> None:
        """A scheduler that takes torchsde's Brownian tree (``noise_sampler``) gets the probe's
        Brownian sources in its place, or the library's own tree seeded from the study's seed
        (DPMSolverSDE reads ``noise_sampler_seed``; CosineDPMSolver seeds it from ``step``'s
        generator)."""
        if self._declared.noise_argument != NOISE_SAMPLER or not self.stochastic:
            return
        if noise is None:
            scheduler.noise_sampler_seed = derive_seed(seed, "diffusers") % 2**63
        else:
            scheduler.noise_sampler = lambda sigma, sigma_next: noise.draw(
                like, float(sigma), float(sigma_next))

    @contextlib.contextmanager
    def _probe_randn(self, noise: ProbeNoise | None):
        """For a scheduler that draws its noise itself (``randn_tensor`` in its module, e.g.
        FlowMatchEuler's stochastic_sampling), the probe's noise served in its place while it
        runs; nothing changes otherwise."""
        if noise is None or self._declared.noise_argument != RANDN_TENSOR:
            yield
            return
        module = importlib.import_module(self._class.__module__)
        original = module.randn_tensor

        def probe_randn(shape, generator=None, device=None, dtype=None, **_):
            return noise.draw(torch.zeros(shape, device=device, dtype=dtype))

        module.randn_tensor = probe_randn
        try:
            yield
        finally:
            module.randn_tensor = original

    def run(self, model, schedule, x, ts, noise: ProbeNoise | None, seed: int) -> torch.Tensor:
        with self._quiet(), self._probe_randn(noise):
            return self._run(model, schedule, x, ts, noise, seed)

    def _run(self, model, schedule, x, ts, noise: ProbeNoise | None, seed: int) -> torch.Tensor:
        numeric = schedule.numeric
        self.check_steps(ts.numel() - 1, schedule)
        scheduler, network = self.scheduler_and_network(schedule, ts.numel() - 1, model,
                                                        device=x.device)
        state = x / self._state_scale(numeric, ts[0])
        generator = None
        if (self.stochastic and noise is None) or self._declared.loop is not None:
            # a pipeline's loop may draw even where its noise is multiplied by 0 (KarrasVe
            # without churn): from this generator, never from torch's global one
            generator = torch.Generator(x.device).manual_seed(
                derive_seed(seed, "diffusers") % 2**63)
        self._serve_brownian_noise(scheduler, state, noise, seed)
        state = self._loop(scheduler, network, state, noise, generator)
        # at the data (its last state, decoded as the sample) or at ts[-1]: output_time
        return self._state_scale(numeric, self.output_time(schedule, ts)) * state

    def scheduler_and_network(self, schedule, steps: int, model, device=None):
        """(the scheduler with its timesteps set for ``steps`` on ``schedule``, the exact network
        it calls: ``model`` (x, t) → x̂₀ seen through its convention), as :meth:`run` makes them
        (experiments/peers.py times one call of that network, the model diffusers sees)."""
        scheduler = self._scheduler_for(schedule, steps, device=device)
        return scheduler, self._network(scheduler, model, schedule.numeric)

    def _state_scale(self, numeric, t: torch.Tensor) -> torch.Tensor:
        """c(t) with the study's x = c(t) · the scheduler's state at t: s + sσ for x_f (flow,
        :func:`flow_scale`), √(s² + (sσ)²) for a VP state (VP, IPNDM's cosine: :func:`vp_scale`),
        s for x̃ = x/s (VE, EDM); finite at a pure-noise end but for x/s."""
        if self.flow:
            return flow_scale(numeric, t)
        if self.state in (VP, COSINE):
            return vp_scale(numeric, t)
        return numeric.s(t)

    def grid_sigmas(self, schedule, ts: torch.Tensor) -> torch.Tensor | None:
        """The σ's the scheduler steps between for this study's step count (its float32 values,
        steps shorter than float32's resolution dropped: EDM-DPM-Solver's σ_min from its ρ grid
        and from its config differ by one ulp), or None where its grid ends at σ = 0 (Heun) or
        is in σ_f (flow mode: :meth:`grid_times`)."""
        if self.flow:
            return None
        # quiet: HeunDiscrete sets timesteps (numpy's notice) in its constructor
        scheduler = self._scheduler_for(schedule, ts.numel() - 1)
        if hasattr(scheduler, "sigmas"):
            sigmas = scheduler.sigmas.to(torch.float64)
        else:  # DDIM: ᾱ at its timesteps, then its final ᾱ
            alphas = torch.cat([scheduler.alphas_cumprod[scheduler.timesteps],
                                scheduler.final_alpha_cumprod.reshape(1)]).to(torch.float64)
            sigmas = torch.sqrt((1 - alphas) / alphas)
        kept = [sigmas[0]]
        for sigma in sigmas[1:]:
            if abs(float(sigma - kept[-1])) > 4 * torch.finfo(torch.float32).eps * float(sigma):
                kept.append(sigma)
        sigmas = torch.stack(kept)
        return None if bool((sigmas <= 0).any()) else sigmas

    def grid_times(self, schedule, ts: torch.Tensor) -> torch.Tensor | None:
        """In flow mode, the study times of the σ_f's it steps between (zero-length steps
        dropped), from ts[0] to :meth:`output_time`; None otherwise (:meth:`grid_sigmas`)."""
        if not self.flow:
            return None
        scheduler = self._scheduler_for(schedule, ts.numel() - 1)
        times = flow_time(schedule.numeric, torch.unique_consecutive(scheduler.sigmas).to(ts))
        times[0] = ts[0]
        return times

    def error_floor(self, problem, ts: torch.Tensor) -> tuple[float, str] | None:
        """(TABLE_FLOOR_MULTIPLE · F, kind) on a problem with an exact law, F = W₂(the output law
        it tends to as N → ∞, p at its output time), where that limit is not p's (:meth:`_limit`):
        the error left at every step count. None otherwise: a scheduler on the table's entries
        has no interpolation error (it is refused past them instead), and without an exact law
        there is no W₂ to give. Computed once per problem, grid ends and options."""
        limit = self._limit(problem.schedule)
        if EXACT_LAW not in problem.capabilities or limit is None:
            return None
        limit_law, kind = limit
        errors = _LIMIT_ERRORS.setdefault(problem, {})
        key = (repr(self.parameters()), float(ts[0]), float(ts[-1]))
        if key not in errors:
            errors[key] = float(problem.w2(limit_law(problem, ts),
                                            self.output_time(problem.schedule, ts)))
        return TABLE_FLOOR_MULTIPLE * errors[key], kind

    def _limit(self, schedule):
        """(its N → ∞ output law as a function of (problem, ts), the floor's kind), or None:
        FlowMatchEuler/Heun end with a jump from a σ_f,min that N does not move
        (:meth:`jump_limit_law`); the flow modes of the multistep solvers read int timesteps
        from a start below 1 (:meth:`flow_limit_law`); a VP scheduler that clamps a zero-SNR
        table's last ᾱ starts above pure noise (:meth:`clamped_start_limit_law`); an
        ``interpolated`` scheduler reads its σ table between entries (:meth:`limit_law`; Heun's
        limit also ends at σ = 0); one that ends with a step to σ = 0 from the study's σ_min
        without a table to interpolate denoises p there (:meth:`denoised_limit_law`)."""
        if self._declared.state == FLOW:
            return self.jump_limit_law, "last-jump limit (fixed σ_f → 0)"
        if self.flow:
            return self.flow_limit_law, "flow-mode limit (int timesteps, start below 1)"
        if self._clamped_start(schedule) is not None:
            return self.clamped_start_limit_law, "zero-SNR clamp (start at ᾱ = 2⁻²⁴)"
        if self._declared.table == INTERPOLATED:
            return self.limit_law, "σ table, σ = 0 end" if self._ends_at_zero \
                else "σ table"
        if self._ends_at_zero:
            return self.denoised_limit_law, "σ = 0 end"
        return None

    def denoised_limit_law(self, problem, ts: torch.Tensor) -> GaussianLaw:
        """The output law as N → ∞ of a scheduler whose last step goes from σ(ts[−1]) to σ = 0
        with x̂₀ = D(x; t) (Euler's step to σ = 0, Karras et al. 2022, Alg. 1, line 6; Tweedie's
        denoiser for ScoreSdeVe's last mean): p at ts[−1], denoised; in x̃ = x/s, so the output
        is s(ts[−1]) D. Its ends are σ(t_min) rounded to float32 (a relative 6e-8: its effect
        on this floor is of that relative size)."""
        t_last = ts[-1]
        return problem.denoiser(problem.marginal_law(t_last), t_last) \
            * problem.schedule.numeric.s(t_last)

    def _clamped_start(self, schedule) -> float | None:
        """σ of its table's last entry where the study's table has σ = ∞ there (a pure-noise
        end) but the scheduler holds a finite one: ``rescale_betas_zero_snr`` sets that ᾱ to
        2⁻²⁴ (σ ≈ 4096) in DPMSolverMultistep, UniPC, Euler and EulerAncestral, "so first sigma
        is not inf". None otherwise."""
        if self.flow or self._declared.state != VP or not schedule.pure_noise_end:
            return None
        with self._quiet():
            last = float(self._scheduler(schedule).alphas_cumprod[-1])
        return math.sqrt((1 - last) / last) if last > 0 else None

    def clamped_start_limit_law(self, problem, ts: torch.Tensor) -> GaussianLaw:
        """The output law as N → ∞ of a scheduler that starts at its clamped σ_c (≈ 4096)
        instead of σ = ∞, reading the pure noise it is given as its state there: the exact
        PF-ODE from x_vp ~ p(t_max) placed at t_c = σ⁻¹(σ_c), by rk4 on 512 steps uniform in λ
        in float64 (a λ-step of 0.03: error ~1e-10), to ts[-1]."""
        numeric = problem.schedule.numeric
        t_start = numeric.sigma_inv(torch.tensor(self._clamped_start(problem.schedule),
                                                 dtype=torch.float64))
        law = problem.marginal_law(ts[0]) * (vp_scale(numeric, t_start) / vp_scale(numeric, ts[0]))
        ends = numeric.half_log_snr(torch.stack([t_start, ts[-1].to(torch.float64)]))
        grid = numeric.sigma_inv(torch.exp(-torch.linspace(float(ends[0]), float(ends[1]), 513,
                                                           dtype=torch.float64)))
        grid[0], grid[-1] = t_start, ts[-1]
        return sample(get_solver("rk4"), problem.denoiser, problem.schedule, law, grid,
                      noise=ExactLawNoise()).x

    def jump_limit_law(self, problem, ts: torch.Tensor) -> GaussianLaw:
        """The output law of FlowMatchEuler/Heun as N → ∞: their grid ends at a σ_f,min > 0 that
        N does not move (1/T shifted; shifted twice by diffusers ≤ 0.42, whose sigma_min is
        stored after the shift and shifted again in set_timesteps: huggingface/diffusers#13243),
        then jumps to σ_f = 0 with x̂₀ = D(x; t(σ_f,min)). Their limit is that jump from the exact
        marginal there; on Gaussian data the jump shrinks each variance λ by σ²λ/(λ + σ²) at that
        σ (σ = σ_f,min/(1 − σ_f,min)), a W₂ error ≈ σ²/(2√λ)."""
        scheduler = self._scheduler_for(problem.schedule, ts.numel() - 1)
        t_last = flow_time(problem.schedule.numeric, scheduler.sigmas[-2:-1].to(ts)).reshape(())
        return problem.denoiser(problem.marginal_law(t_last), t_last)

    def flow_limit_law(self, problem, ts: torch.Tensor) -> GaussianLaw:
        """The exact output law, as N → ∞, of a multistep scheduler's flow mode (module
        docstring, "Flow matching"), which :meth:`error_floor` takes as F for these schedulers.

        Its start σ_f⁰ (below 1: the shifted 1 − 1/T, or 1 − 10⁻⁶) does not move with N, and its
        network reads σ_net = ⌊σ_f T⌋/T while its step converts the output with σ_f: x̂₀ = x_f −
        σ_f v = x_f − (σ_f/σ_net)(x_f − D(x; t(σ_net))). Its limit is the PF-ODE with that x̂₀ in
        place of D, from the pure noise read as x_f at σ_f⁰. Solved by rk4 in float64, one step per
        cell of constant ⌊σ_f T⌋ (the slope is smooth inside a cell: error O(T⁻⁵) per cell), down
        to σ_f = 1/T (or t_min where that is later), where the last step jumps to the data with
        x̂₀: the ODE's remainder below is one Euler step of that size, O(T⁻²). The study's error
        floor is TABLE_FLOOR_MULTIPLE times its W₂ to the data law: at N steps the truncation is
        sampled at N points, at most twice its mean 1/(2T)."""
        numeric = problem.schedule.numeric
        scheduler = self._scheduler_for(problem.schedule, ts.numel() - 1)
        train_steps = scheduler.config.num_train_timesteps
        sigma_start = float(scheduler.sigmas[0])
        edges = torch.arange(math.floor(sigma_start * train_steps), 0, -1,
                             dtype=torch.float64) / train_steps
        sigma_f = torch.cat([torch.tensor([sigma_start], dtype=torch.float64),
                             edges[edges < sigma_start]])
        grid = flow_time(numeric, sigma_f)
        grid = torch.cat([grid[grid > numeric.t_min], torch.tensor([numeric.t_min],
                                                                   dtype=torch.float64)])

        def converted(sigma_net):
            """x̂₀ of the scheduler's step where its network reads σ_net."""
            t_net = flow_time(numeric, torch.tensor(sigma_net, dtype=torch.float64))

            def denoiser(x, t):
                sigma_f = 1 - numeric.s(t) / flow_scale(numeric, t)
                x_flow = x / flow_scale(numeric, t)
                denoised = problem.denoiser(flow_scale(numeric, t_net) * x_flow, t_net)
                return x_flow - sigma_f / sigma_net * (x_flow - denoised)

            return denoiser

        law = problem.marginal_law(ts[0]) * (flow_scale(numeric, grid[0])
                                             / flow_scale(numeric, ts[0]))
        rk4 = get_solver("rk4")
        for t_high, t_low in zip(grid[:-1], grid[1:], strict=True):
            middle = 0.5 * (t_high + t_low)
            sigma_middle = float(1 - numeric.s(middle) / flow_scale(numeric, middle))
            cell = converted(math.floor(sigma_middle * train_steps) / train_steps)
            law = sample(rk4, cell, problem.schedule, law, torch.stack([t_high, t_low]),
                         noise=ExactLawNoise()).x
        sigma_last = float(1 - numeric.s(grid[-1]) / flow_scale(numeric, grid[-1]))
        last = converted(max(math.floor(sigma_last * train_steps + 1e-9), 1) / train_steps)
        return last(law, grid[-1]) * numeric.s(torch.zeros((), dtype=torch.float64))

    def limit_grid(self, schedule, ts: torch.Tensor) -> torch.Tensor:
        """From ts[0] to ts[-1], the times of the table's σ's, each cell cut into k equal steps
        in log σ, k = ⌈h/LIMIT_STEP⌉ for that cell's width h in log σ: the slope has a kink at
        every entry and is smooth between, so rk4's error is O((h/k)⁴) per unit log σ against
        the floor's O(h²). (One k for every cell, the widest's, took 18 steps per cell on Stable
        Diffusion's table, whose first cell is 0.35 wide and most below 0.01.)"""
        with self._quiet():
            log_sigmas = _log_sigmas(self._scheduler(schedule))
        cuts = torch.ceil((log_sigmas[1:] - log_sigmas[:-1]) / LIMIT_STEP).long().clamp(min=1)
        cell = torch.repeat_interleave(torch.arange(len(cuts)), cuts)
        within = torch.arange(int(cuts.sum())) - (torch.cumsum(cuts, 0) - cuts)[cell]
        fine = torch.lerp(log_sigmas[cell], log_sigmas[cell + 1], within / cuts[cell].double())
        grid = schedule.numeric.sigma_inv(torch.cat([fine, log_sigmas[-1:]]).exp().flip(0))
        grid[0], grid[-1] = ts[0], ts[-1]
        return grid

    def limit_law(self, problem, ts: torch.Tensor) -> GaussianLaw:
        """The exact output law of the scheduler's continuous limit N → ∞ from p_{ts[0]}.

        Its step is x̃ ← x̃ + (σ_next − σ) ε̂ with ε̂ its network's output at the timestep τ of σ
        (Heun: the mean of two such slopes), so its limit is dx̃/dσ = ε̂(x̃/√(1 + σ²), τ(σ)),
        τ(σ) linear in σ within a cell of the table (np.interp): the probability-flow ODE with
        denoiser x̃ − σ ε̂ in the variables x̃ = x/s. Its network (:meth:`_network`) reads σ at τ
        linearly in log σ, hence the floor (module docstring, "The table's limits"). Heun's
        last step, an Euler step to σ = 0, maps x̃ to x̃ − σ_min ε̂. Solved by rk4 in float64
        on :meth:`limit_grid` (its accuracy: :data:`LIMIT_STEP`)."""
        with self._quiet():
            scheduler = self._scheduler(problem.schedule)
        sigmas, numeric = _log_sigmas(scheduler).exp(), problem.schedule.numeric
        network = self._network(scheduler, problem.denoiser, numeric)

        def denoiser(x, t):
            sigma = numeric.sigma(t)
            cell = int(torch.searchsorted(sigmas, sigma.reshape(1)).clamp(1, len(sigmas) - 1))
            tau = cell - 1 + (sigma - sigmas[cell - 1]) / (sigmas[cell] - sigmas[cell - 1])
            x_tilde = x / numeric.s(t)
            return x_tilde - sigma * network(x_tilde / torch.sqrt(1 + sigma**2), tau)

        law = sample(get_solver("rk4"), denoiser, problem.schedule, problem.marginal_law(ts[0]),
                     self.limit_grid(problem.schedule, ts), noise=ExactLawNoise()).x
        if self._ends_at_zero:
            law = denoiser(law, ts[-1]) * numeric.s(ts[-1])
        return law

    def _network(self, scheduler, model, numeric):
        """The exact network in the scheduler's convention (module docstring)."""

        def denoise(x_tilde, sigma):
            t = numeric.sigma_inv(sigma)
            return model(numeric.s(t) * x_tilde, t)

        if self.flow:
            train_steps = scheduler.config.num_train_timesteps

            def velocity(x_flow, timestep):
                sigma_f = timestep.to(device=x_flow.device, dtype=torch.float64) / train_steps
                t = flow_time(numeric, sigma_f).to(x_flow.dtype)
                denoised = model(flow_scale(numeric, t) * x_flow, t)
                return (x_flow - denoised) / sigma_f.to(x_flow.dtype)

            return velocity

        if self._declared.state == COSINE:

            def v_network(x_vp, timestep):
                """v of its state α x₀ + σ ε at α = cos φ, σ = sin φ, φ = timestep·π/2, i.e.
                log(σ/α) = log sin φ − log cos φ (∞ at pure noise)."""
                phi = timestep.to(device=x_vp.device, dtype=torch.float64) * (math.pi / 2)
                log_sigma = torch.log(torch.sin(phi)) - torch.log(torch.cos(phi))
                return _vp_prediction(model, numeric, x_vp, log_sigma, v_prediction=True)

            return v_network

        if self._declared.state == SIGMA:  # the pipeline's loop converts D (pipeline_loops)
            return denoise

        if self._declared.state == EDM:
            sigma_data = scheduler.config.sigma_data
            # precondition_outputs: c_out's sign is −1 for a v-prediction F
            sign = -1.0 if scheduler.config.get("prediction_type") == "v_prediction" else 1.0
            noise_level = self._declared.noise_level

            def network(model_input, c_noise):
                sigma = noise_level(c_noise.to(torch.float64)).to(model_input)
                scale = torch.sqrt(sigma**2 + sigma_data**2)
                x_tilde = model_input * scale
                c_skip, c_out = sigma_data**2 / scale**2, sign * sigma * sigma_data / scale
                return (denoise(x_tilde, sigma) - c_skip * x_tilde) / c_out

            return network

        # on the timesteps' device: two CPU scalars beside a CUDA weight cannot share a kernel
        log_sigmas = _log_sigmas(scheduler).to(scheduler.timesteps.device)

        v_prediction = self._settings().get("prediction_type") == "v_prediction"

        def network(x_vp, timestep):
            """ε or v (:func:`_vp_prediction`) at the table's σ at the timestep, log-linear
            between entries."""
            tau = timestep.to(torch.float64).clamp(0, len(log_sigmas) - 1)
            low = tau.floor().long().clamp(max=len(log_sigmas) - 2)
            weight = tau - low
            entry = tau == tau.round()  # on an entry: its value (lerp with σ = ∞ gives NaN)
            # torch.take, as indexing by a 0-dim tensor reads the index back to the host
            log_sigma = torch.where(entry, torch.take(log_sigmas, tau.round().long()),
                                    torch.lerp(torch.take(log_sigmas, low),
                                               torch.take(log_sigmas, low + 1), weight))
            return _vp_prediction(model, numeric, x_vp, log_sigma, v_prediction)

        return network


def _vp_prediction(model, numeric, x_vp, log_sigma: torch.Tensor, v_prediction: bool):
    """The exact ε = (x_vp − a D)/b, or v = (a x_vp − D)/b (Salimans & Ho 2022, §4), of a VP
    state x_vp = a x₀ + b ε at log σ, a = √ᾱ = 1/√(1 + σ²), b = σ a, D the problem's denoiser at
    the study's time of that σ: finite where σ = ∞ (pure noise, t_max: ε = x_vp, v = −D). x_vp is
    a batch, or a law (:meth:`DiffusersSampler.limit_law`)."""
    a, b = (torch.sigmoid(sign * 2 * log_sigma).sqrt().to(dtype=x_vp.dtype, device=x_vp.device)
            for sign in (-1, 1))
    t = numeric.sigma_inv(torch.exp(log_sigma).clamp(max=torch.finfo(torch.float64).max))
    t = torch.where(torch.isinf(log_sigma), torch.full_like(t, numeric.t_max), t).to(a)
    denoised = model(x_vp * vp_scale(numeric, t), t)
    return (x_vp * a - denoised) / b if v_prediction else (x_vp - denoised * a) / b


def _log_sigmas(scheduler) -> torch.Tensor:
    """log σ_τ of the scheduler's own (float32) table ᾱ_τ, in float64."""
    alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
    return 0.5 * torch.log((1 - alphas_cumprod) / alphas_cumprod)


def vp_scale(numeric, t: torch.Tensor) -> torch.Tensor:
    """√(s² + (sσ)²) at t: the VP state x_τ = √ᾱ x₀ + √(1 − ᾱ) ε is x/√(s² + (sσ)²) with
    ᾱ = 1/(1 + σ²); finite at a pure-noise end, where s = 0."""
    return torch.sqrt(numeric.s(t) ** 2 + numeric.kernel_std(t) ** 2)


def flow_scale(numeric, t: torch.Tensor) -> torch.Tensor:
    """s + sσ at t: x_f = x/(s + sσ) (module docstring, "Flow matching"); finite at a pure-noise
    end, where s = 0."""
    return numeric.s(t) + numeric.kernel_std(t)


def flow_time(numeric, sigma_f: torch.Tensor) -> torch.Tensor:
    """The time t with σ_f(t) = σ(t)/(1 + σ(t)) = sigma_f: σ⁻¹(σ_f/(1 − σ_f)), and t_max where
    σ_f = 1 (pure noise, σ = ∞)."""
    pure_noise = sigma_f >= 1
    sigma = sigma_f / torch.where(pure_noise, torch.ones_like(sigma_f), 1 - sigma_f)
    return torch.where(pure_noise, torch.full_like(sigma_f, numeric.t_max), numeric.sigma_inv(sigma))
