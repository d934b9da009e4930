"""Sampling from a pure-noise end (s = 0, σ = ∞ at t = 1: rf, its shifted form, vp0snr).

The samplers that declare ``handles_infinite_sigma`` take the exact limit of their step there;
the check is continuity: a start at 1 − ε converges to the exact start as ε → 0, at the rate the
step's dependence on the start predicts. The others are refused with the reason, by the sampling
loop and by a study.
"""

import math

import pytest
import torch

from sdebench.problems.gaussian import GaussianProblem
from sdebench.solvers import get_solver
from sdebench.solvers.grids import make_grid
from sdebench.solvers.loop import sample
from sdebench.studies.config import StudyConfig, refused_samplers, resolve_sections
from sdebench.studies.convergence import run_study
from sdebench.theory import get_schedule

SCHEDULES = ["rf", "rf:shift=3", "vp0snr"]
ONE_STEP = ["euler", "heun", "rk4", "ddim", "ancestral"]
MULTISTEP = ["dpmpp_2m", "unipc_bh2", "dpmpp_2m_sde"]
REFUSED = ["dpm_solver_2", "dpm_solver_3", "euler_maruyama", "reverse_diffusion", "pc",
           "annealed_langevin", "edm_stochastic"]
STEPS = 16


def _run(name, schedule, start):
    """Samples of ``name`` on a 16-step uniform grid whose first time is ``start`` (float64,
    Gaussian data in d = 3, 4 samples, the same starting points and noise every time)."""
    problem = GaussianProblem.random(schedule, 3, seed=0)
    ts = make_grid("uniform", schedule, STEPS)
    ts[0] = start
    x = problem.sample_marginal(torch.tensor(1.0, dtype=torch.float64), 4,
                                torch.Generator().manual_seed(1))
    return sample(get_solver(name), problem.denoiser, schedule, x, ts).x


@pytest.mark.parametrize("spec", SCHEDULES)
def test_the_exact_state_at_a_pure_noise_end(spec):
    """At t = 1: s = 0, sσ = 1, the denoiser is the data mean and p_1 = N(0, I) exactly."""
    schedule = get_schedule(spec)
    one = torch.tensor(1.0, dtype=torch.float64)
    numeric = schedule.numeric
    assert schedule.pure_noise_end and float(numeric.s(one)) == 0.0
    assert float(numeric.kernel_std(one)) == pytest.approx(1.0, rel=4e-16)
    problem = GaussianProblem.random(schedule, 3, seed=0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(problem.denoiser(x, one), problem.mean.expand(5, 3), rtol=0, atol=0)
    torch.testing.assert_close(problem.marginal_std_eigen(one), torch.ones(3, dtype=torch.float64),
                               rtol=4e-16, atol=0)


@pytest.mark.parametrize("spec", SCHEDULES)
@pytest.mark.parametrize("name", ONE_STEP)
def test_one_step_samplers_start_at_the_limit(spec, name):
    """A step's output is smooth in its start time, so starting at 1 − ε moves the output by
    c ε + O(ε²): from ε = 10⁻³ to 10⁻⁶ the change shrinks 1000-fold, to within the O(ε) relative
    term (≤ 5 % at ε = 10⁻³ for these schedules, whose coefficients vary on a scale ≥ 0.02)."""
    schedule = get_schedule(spec)
    exact = _run(name, schedule, 1.0)
    assert torch.isfinite(exact).all()
    changes = [float((_run(name, schedule, 1 - 10.0**-k) - exact).abs().max()) for k in (3, 6)]
    assert changes[1] / changes[0] == pytest.approx(1e-3, rel=0.05), changes


@pytest.mark.parametrize("spec", ["rf", "vp0snr"])
@pytest.mark.parametrize("name", MULTISTEP)
def test_multistep_samplers_start_at_the_limit(spec, name):
    """A multistep step weighs the previous model output by h/h_prev (r = h_prev/h), and from
    1 − ε the first step's h_prev = λ(t₁) − λ(1 − ε) grows like log(1/ε): the change from the
    exact start (h_prev = ∞: the weight is 0) falls like 1/h_prev. From ε = 10⁻⁶ to 10⁻¹² it shrinks
    by h_prev(10⁻⁶)/h_prev(10⁻¹²), to within the O(1/h_prev) next term (≤ 15 % here)."""
    schedule = get_schedule(spec)
    exact = _run(name, schedule, 1.0)
    assert torch.isfinite(exact).all()
    numeric = schedule.numeric
    t1 = make_grid("uniform", schedule, STEPS)[1]
    changes, gaps = [], []
    for k in (6, 12):
        start = torch.tensor(1 - 10.0**-k, dtype=torch.float64)
        changes.append(float((_run(name, schedule, float(start)) - exact).abs().max()))
        gaps.append(float(numeric.half_log_snr(t1) - numeric.half_log_snr(start)))
    assert changes[1] / changes[0] == pytest.approx(gaps[0] / gaps[1], rel=0.15), (changes, gaps)


def test_dpmpp_2m_first_step_from_pure_noise_is_the_posterior_mean_step():
    """From s = 0, sσ = 1 the exponential update is x' = s'σ' x + s' D(x, 1) exactly."""
    schedule = get_schedule("rf")
    problem = GaussianProblem.random(schedule, 3, seed=0)
    ts = torch.tensor([1.0, 0.5], dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = sample(get_solver("dpmpp_2m"), problem.denoiser, schedule, x, ts).x
    torch.testing.assert_close(out, 0.5 * x + 0.5 * problem.mean, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("name", REFUSED)
def test_samplers_that_cannot_start_at_pure_noise_are_refused_with_the_reason(name):
    schedule = get_schedule("rf")
    with pytest.raises(ValueError, match="handles_infinite_sigma") as error:
        _run(name, schedule, 1.0)
    assert "s = 0 and sigma = infinity" in str(error.value)
    assert _run(name, schedule, 1 - 1e-3).isfinite().all()  # below t_max it runs


def test_a_study_refuses_them_and_measures_the_rest():
    """rf, Gaussian data, exact law: Euler, Heun and DDIM reach their orders from t = 1 exactly
    (Euler in t is DDIM on rf: the same errors), and the refused samplers run no unit."""
    config = StudyConfig(schedules=["rf"], samplers=["euler", "heun", "ddim", "dpm_solver_2"],
                         steps=[16, 32, 64, 128, 256], grid="uniform", dim=3, batch=8)
    sections = resolve_sections(config)
    assert list(refused_samplers(config, sections[0])) == ["dpm_solver_2"]
    study = run_study(config, None, progress=False, trajectories=False)
    assert "dpm_solver_2" not in set(study.results.sampler)
    orders = study.orders[study.orders.metric == "w2"].set_index("sampler")
    assert orders.verdict.to_dict() == {"euler": "PASS", "heun": "PASS", "ddim": "PASS"}
    euler, ddim = (study.results[(study.results.sampler == name) & (study.results.metric == "w2")]
                   .sort_values("steps").value.to_numpy() for name in ("euler", "ddim"))
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(euler, ddim, strict=True))


@pytest.mark.parametrize("spec", ["rf", "vp0snr"])
def test_the_reports_paths_start_at_pure_noise(spec):
    """The report's sample paths (studies/trajectories.py) on a pure-noise schedule: the reverse
    SDE is drawn by ancestral sampling, which starts at t = 1 exactly (Euler–Maruyama cannot:
    f and g² are infinite there), and both kinds of paths start there and stay finite. Before,
    every report on rf or vp0snr stopped the study at its end (the λ-uniform grid)."""
    from sdebench.studies.trajectories import trajectory_frame

    frame = trajectory_frame(spec, steps=50)
    assert set(frame.kind) == {"reverse SDE (ancestral)", "PF-ODE (Heun)"}
    assert frame.groupby("kind").t.max().eq(1.0).all() and frame.x.map(math.isfinite).all()
