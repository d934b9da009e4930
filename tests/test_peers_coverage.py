"""The rest of diffusers' continuous-Gaussian schedulers and k-diffusion's adaptive sampler as peers
(issue 26): each one's exact law checked against an independent computation of the same method
— sdebench's own sampler on the peer's grid, the non-parallel scheduler, the library's own run —
and the ones that cannot be judged refused with their reason.

Tolerances: diffusers keeps its σ's and coefficients in float32, so two computations of the same
method agree to λ u₃₂ √NFE · scale (λ = ROUNDOFF_SAFETY, the rule of the round-off floor);
k-diffusion computes in float64 (u₆₄).
"""

import importlib
import math

import pytest
import torch

from sdebench.peers.inversion import RoundTrip, round_trip_error
from sdebench.problems import get_problem
from sdebench.problems.law import ExactLawNoise
from sdebench.solvers import get_solver, make_grid, sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.solvers.solver import unit_roundoff
from sdebench.studies.metrics import ROUNDOFF_SAFETY
from sdebench.theory import get_schedule

pytestmark = [pytest.mark.peers, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

EDM = get_schedule("edm")


@pytest.fixture(scope="module")
def problem():
    return get_problem("gaussian", EDM, dim=4, seed=0)


def exact_law(spec: str, problem, steps: int):
    ts = make_grid("logsnr", EDM, steps)
    return sample(get_solver(spec), problem.denoiser, EDM, problem.marginal_law(ts[0]), ts,
                  noise=ExactLawNoise()).x, ts


def float32_tolerance(problem, nfe: int) -> float:
    """λ u₃₂ √NFE · scale, the scale the largest state's (σ_max = 80 on edm)."""
    scale = float(problem.marginal_law(make_grid("logsnr", EDM, 1)[0]).variance.sqrt().max())
    return ROUNDOFF_SAFETY * unit_roundoff(None, torch.float32) * math.sqrt(nfe) * scale


def law_difference(first, second) -> float:
    """The agreement metric's distance: the largest difference of means and of deviations."""
    return max(float((first.mean - second.mean).abs().max()),
               float((first.variance.sqrt() - second.variance.sqrt()).abs().max()))


def twin_on_grid(twin: str, problem, sigmas: torch.Tensor, model=None):
    """sdebench's ``twin`` from p at σ(t_max) through the σ's (float32 values, as the peer
    holds them, its ends those of the study's grid up to their float32 rounding) and then the
    jump to σ = 0 by the exact denoiser (Euler's step to σ = 0, Karras et al. 2022, Alg. 1);
    ``model``: the denoiser the twin calls (default: the problem's)."""
    grid = EDM.numeric.sigma_inv(sigmas.to(torch.float64))
    grid[0], grid[-1] = float(EDM.t_max), float(EDM.t_min)
    law = sample(get_solver(twin), model or problem.denoiser, EDM, problem.marginal_law(grid[0]),
                 grid, noise=ExactLawNoise()).x
    return (model or problem.denoiser)(law, grid[-1])


# --- the Parallel variants ---------------------------------------------------------------------

@pytest.mark.parametrize("name, spec", [("DDIMScheduler", ""), ("DDIMScheduler", ":eta=1.0"),
                                        ("DDPMScheduler", "")])
def test_a_parallel_variant_steps_as_its_scheduler(problem, name, spec):
    """ParaDiGMS' schedulers keep the sequential step: their exact laws (DDIM, DDIM with η = 1,
    DDPM) equal the non-parallel scheduler's to float32 round-off."""
    parallel, _ = exact_law(f"diffusers.{name.replace('Scheduler', 'ParallelScheduler')}{spec}",
                            problem, 16)
    sequential, _ = exact_law(f"diffusers.{name}{spec}", problem, 16)
    assert law_difference(parallel, sequential) <= float32_tolerance(problem, 16)


@pytest.mark.parametrize("name", ["DDIMParallelScheduler", "DDPMParallelScheduler"])
def test_batch_step_no_noise_is_the_step_without_its_noise(name, monkeypatch):
    """The parallel API: one call on a window of timesteps (one state each) equals ``step`` on
    each, its noise set to zero (DDPM draws it from its module's randn_tensor)."""
    peer = get_solver(f"diffusers.{name}")
    scheduler = peer._scheduler_for(EDM, 16)
    module = importlib.import_module(type(scheduler).__module__)
    monkeypatch.setattr(module, "randn_tensor", lambda shape, **kwargs: torch.zeros(
        shape, dtype=kwargs.get("dtype")))
    timesteps = scheduler.timesteps[3:9]
    generator = torch.Generator().manual_seed(0)
    states = torch.randn((len(timesteps), 4), generator=generator, dtype=torch.float64)
    outputs = torch.randn((len(timesteps), 4), generator=generator, dtype=torch.float64)
    batched = scheduler.batch_step_no_noise(outputs, timesteps, states)
    one_by_one = torch.stack([scheduler.step(outputs[i:i + 1], t, states[i:i + 1]).prev_sample[0]
                              for i, t in enumerate(timesteps)])
    # the same float32 coefficients on the same numbers: round-off of the largest
    tolerance = ROUNDOFF_SAFETY * unit_roundoff(None, torch.float32) * one_by_one.abs().max()
    assert (batched - one_by_one).abs().max() <= tolerance


# --- the σ-range schedulers: the same method as sdebench's, on their grid -------------------------

@pytest.mark.parametrize("steps", [8, 32])
def test_cosine_dpm_solver_is_sde_dpm_solver_2m(problem, steps):
    """CosineDPMSolverMultistep (Stable Audio) is SDE-DPM-Solver++(2M) on EDM's x̃ with a
    v-prediction network read at c_noise = atan(σ)·2/π: its exact law equals sdebench's
    dpmpp_2m_sde on its σ's followed by its last (first-order) step to σ = 0, the jump x̂₀, to
    float32 round-off. A wrong noise semantics (the Brownian tree) or c_noise would not."""
    peer = get_solver("diffusers.CosineDPMSolverMultistepScheduler")
    law, ts = exact_law("diffusers.CosineDPMSolverMultistepScheduler", problem, steps)
    sigmas = peer._scheduler_for(EDM, steps).sigmas[:-1]  # without its last σ = 0
    own = twin_on_grid("dpmpp_2m_sde", problem, sigmas)
    assert law_difference(law, own) <= float32_tolerance(problem, steps)


def test_cosine_dpm_solver_final_sigma_min_crashes_its_brownian_tree():
    """final_sigmas_type='sigma_min' appends σ_min after a grid that already ends there: its last
    step, zero-length (two float32 ulps up), asks torchsde's tree for noise on an interval that
    its rounding empties, and the tree recurses without end (experiments/findings/
    cosine_dpmsolver_final_step.py); a study refuses the option before any unit, with the
    library's error (if this stops failing, diffusers fixed it and the scheduler may end at
    σ_min)."""
    from sdebench.registry import SpecError

    peer = get_solver("diffusers.CosineDPMSolverMultistepScheduler:final_sigmas_type=sigma_min")
    with pytest.raises(SpecError, match="RecursionError"):
        peer.check_options(EDM, 8)


def test_score_sde_ve_predictor_is_the_reverse_diffusion_predictor(problem):
    """ScoreSdeVe with correct_steps=0 (its pipeline's loop): sdebench's reverse_diffusion (Song
    et al. 2021, eq. 46) on its geometric σ's, then the mean of its last step to σ = 0, which is
    Tweedie's denoiser; equal to float32 round-off when the twin's score, like the pipeline's
    network, is read at the pipeline's continuous sigmas[i], σ'_i (above the step's σ_i by
    (σ_max/σ_min)^(iε/(N−1)), ε = sampling_eps: a relative 1e-4): the twin's denoiser at σ_i is
    then x + σ_i² ∇log p(x; σ'_i) = x + (σ_i/σ'_i)² (D(x; σ'_i) − x)."""
    spec = "diffusers.ScoreSdeVeScheduler:correct_steps=0"
    law, ts = exact_law(spec, problem, 16)
    scheduler = get_solver(spec)._scheduler_for(EDM, 16)
    scheduler.set_sigmas(16)
    steps_at = scheduler.discrete_sigmas.flip(0).to(torch.float64)
    grid = EDM.numeric.sigma_inv(steps_at)
    grid[0], grid[-1] = float(EDM.t_max), float(EDM.t_min)  # as twin_on_grid places them
    read_at = dict(zip(grid.tolist(), EDM.numeric.sigma_inv(
        scheduler.sigmas.to(torch.float64)).tolist(), strict=True))

    def pipeline_network(x, t):
        t_read = torch.tensor(read_at[float(t)], dtype=torch.float64)
        ratio = EDM.numeric.sigma(t) / EDM.numeric.sigma(t_read)
        return x + ratio**2 * (problem.denoiser(x, t_read) - x)

    own = twin_on_grid("reverse_diffusion", problem, steps_at, pipeline_network)
    assert law_difference(law, own) <= float32_tolerance(problem, 16)


def test_score_sde_ve_corrector_is_refused_with_the_reason():
    """Its Langevin corrector's step size comes from the batch's mean norms: a row's step
    depends on the other rows (shown here on the library), so no exact law; refused on every
    schedule with that reason, while correct_steps=0 runs."""
    peer = get_solver("diffusers.ScoreSdeVeScheduler")
    assert "batch's mean norms" in peer.refusal and peer.schedule_refusal(EDM) == peer.refusal
    assert get_solver("diffusers.ScoreSdeVeScheduler:correct_steps=0").schedule_refusal(EDM) == ""
    scheduler = peer._new_scheduler(EDM)
    scheduler.set_timesteps(8)
    rows = torch.tensor([[1.0, 2.0], [30.0, -5.0]], dtype=torch.float64)

    def corrected(sample):
        return scheduler.step_correct(-sample, sample,
                                      generator=torch.Generator().manual_seed(0)).prev_sample

    assert not torch.allclose(corrected(rows)[:1], corrected(rows[:1]))


@pytest.mark.parametrize("spec, twin", [
    ("diffusers.KarrasVeScheduler:s_churn=0", "heun"),
    ("diffusers.KarrasVeScheduler", "edm_stochastic:s_churn=80:s_min=0.05:s_max=50")])
def test_karras_ve_is_karras_algorithm(problem, spec, twin):
    """KarrasVe's pipeline loop is Karras et al.'s Alg. 1 (no churn: sdebench's heun) and Alg. 2
    (its churn 80 on σ ∈ [0.05, 50]: sdebench's edm_stochastic, γ = √2 − 1 at 15 or 16 steps
    alike) on its σ's, the last step an Euler step to σ = 0 (from σ_min, below S_min: no
    churn); equal to float32 round-off (probed churn noise included)."""
    steps = 16
    law, _ = exact_law(spec, problem, steps)
    schedule = get_solver(spec)._scheduler_for(EDM, steps).schedule
    own = twin_on_grid(twin, problem, schedule.flip(0))
    assert law_difference(law, own) <= float32_tolerance(problem, 2 * steps)


def test_karras_ve_grid_runs_between_the_squares_of_its_sigma_options():
    """Its schedule holds Karras et al.'s VE times t_i = σ_i² and the pipeline steps them as σ:
    with sigma_max = √σ(t_max), sigma_min = √σ(t_min) (sdebench's settings) it spans the study's
    σ range, 80 to 0.002 on edm."""
    schedule = get_solver("diffusers.KarrasVeScheduler")._scheduler_for(EDM, 8).schedule
    assert float(schedule[-1]) == pytest.approx(80, rel=1e-6)
    assert float(schedule[0]) == pytest.approx(0.002, rel=1e-6)


# --- DPMSolverSDE's Brownian tree ----------------------------------------------------------------

def test_dpm_solver_sde_draws_overlapping_brownian_intervals(monkeypatch):
    """DPMSolverSDE asks its torchsde tree for [σ, σ_mid] and then [σ, σ_next] in every step (the
    probe serves them as increments of one path, checked against its own tree in
    tests/test_peers.py); served as independent draws (negative control) its law differs by
    far more than that check's Monte Carlo resolution (~2 %)."""
    from sdebench.peers.diffusers import DiffusersSampler

    problem = get_problem("gaussian", EDM, dim=2, seed=0)
    brownian, _ = exact_law("diffusers.DPMSolverSDEScheduler", problem, 8)
    monkeypatch.setattr(DiffusersSampler, "noise_kind", "independent")
    independent, _ = exact_law("diffusers.DPMSolverSDEScheduler", problem, 8)
    assert (independent.variance / brownian.variance - 1).abs().max() > 0.02


# --- the inversion schedulers --------------------------------------------------------------------

@pytest.fixture(scope="module")
def round_trips(problem):
    errors = {}
    for name in ("DDIMInverseScheduler", "DPMSolverMultistepInverseScheduler"):
        peer = RoundTrip(name)
        for steps in ((64, 128, 256) if name.startswith("DDIM") else (8, 16, 32)):
            ts = make_grid("logsnr", EDM, steps)
            data = problem.marginal_law(ts[-1])
            output = sample(peer, problem.denoiser, EDM, data, ts, noise=ExactLawNoise()).x
            errors[name, steps] = (round_trip_error(data, output), float(problem.w2(output,
                                                                                   ts[-1])))
    return errors


def test_ddim_inversion_round_trip_error_is_first_order(round_trips):
    """x₀ → x_T (DDIMInverse) → x₀ (DDIM): its exact error halves with the step size, the local
    slope at 128 → 256 within the verdict's allowance 0.1 of 1."""
    slope = math.log2(round_trips["DDIMInverseScheduler", 128][0]
                      / round_trips["DDIMInverseScheduler", 256][0])
    assert abs(slope - 1) <= 0.1, slope


def test_dpm_solver_inversion_round_trip_error_is_at_least_second_order(round_trips):
    """DPM-Solver++(2M) there and back: at least its legs' order 2 (it measures 4: the legs'
    leading error terms, odd in h, cancel), above float32's floor at 8–32 steps."""
    name = "DPMSolverMultistepInverseScheduler"
    slopes = [math.log2(round_trips[name, n][0] / round_trips[name, 2 * n][0]) for n in (8, 16)]
    assert min(slopes) >= 2 - 0.1, slopes


def test_the_round_trip_error_is_the_w2_of_a_monotone_map(round_trips):
    """E‖y − x₀‖² from the probed coefficients equals W₂² between the round trip's law and the
    data law where the map is increasing in every coordinate (it is: a small perturbation of
    the identity), to float64 round-off of the two formulas."""
    for error, w2 in round_trips.values():
        assert error == pytest.approx(w2, rel=1e-9, abs=1e-15)


# --- k-diffusion's adaptive sampler --------------------------------------------------------------

def test_dpm_adaptive_law_is_the_affine_map_of_the_steps_it_takes(problem):
    """The exact law replays the controller's decisions on the decision draws, so the library's
    own outputs from those draws are that law's affine map applied to them, to float64
    round-off; and a tighter tolerance buys a smaller error with more NFE."""
    from sdebench.peers.kdiffusion import decision_draws

    ts = make_grid("logsnr", EDM, 1)
    start = problem.marginal_law(ts[0])
    results = []
    for tolerance in ("rtol=0.05:atol=0.0078", "rtol=1e-4:atol=1e-5"):
        peer = get_solver(f"kdiffusion.dpm_adaptive:{tolerance}")
        draws = decision_draws(start)
        run = sample(peer, problem.denoiser, EDM, draws, ts, noise=GaussianIncrements(0))
        law = sample(peer, problem.denoiser, EDM, start, ts, noise=ExactLawNoise()).x
        mapped = law.mean + (draws - start.mean) * (law.coef[0] / start.coef[0])
        scale = float(start.variance.sqrt().max())
        assert (run.x - mapped).abs().max() <= ROUNDOFF_SAFETY * unit_roundoff(
            None, torch.float64) * math.sqrt(run.nfe) * scale * 10  # 10: draws up to 10 σ out
        results.append((float(problem.w2(law, ts[-1])), run.nfe))
    (loose, loose_nfe), (tight, tight_nfe) = results
    assert tight < loose and tight_nfe > loose_nfe, results


def test_dpm_adaptive_with_noise_is_refused():
    from sdebench.registry import SpecError

    with pytest.raises(SpecError, match="eta=0.5 makes its step controller react to the noise"):
        get_solver("kdiffusion.dpm_adaptive:eta=0.5")
