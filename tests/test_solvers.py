"""Solver identities, the exact flow map, adapters, guidance, Brownian paths and likelihoods."""

import math

import pytest
import torch

from sdebench.problems.adapters import as_denoiser, from_denoiser, guided
from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.mixture import GaussianMixtureProblem
from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.grids import GRIDS, log_snr_grid, make_grid
from sdebench.solvers.likelihood import pf_ode_log_likelihood
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import BrownianTree, GaussianIncrements, PerSampleIncrements
from sdebench.theory import get_schedule
from tests.helpers import fitted_order, vp_problem

EPS64 = torch.finfo(torch.float64).eps


def _start(problem, ts, n=64, seed=0):
    return problem.sample_marginal(ts[0], n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sde", ["vp", "ve", "edm"])
def test_ddim_equals_dpm_solver_1_to_round_off(sde):
    """DDIM(η=0) vs DPM-Solver-1 written independently: x' = (s'/s)x − s'σ'(eʰ − 1) ε̂."""
    schedule = get_schedule(sde)
    problem = GaussianProblem.random(schedule, 3, seed=2)
    ts = log_snr_grid(schedule, 10)
    x = _start(problem, ts)
    ddim = sample(get_solver("ddim"), problem.denoiser, schedule, x, ts).x
    num = schedule.numeric
    to_eps = num.conversion("x0", "eps")
    y = x
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        eps = to_eps(y, problem.denoiser(y, t), t)
        h = num.half_log_snr(t_next) - num.half_log_snr(t)
        y = num.s(t_next) / num.s(t) * y - num.s(t_next) * num.sigma(t_next) * torch.expm1(h) * eps
    scale = max(1.0, float(y.abs().max()))
    assert float((ddim - y).abs().max()) <= 1e3 * EPS64 * scale


def test_dpmpp_first_step_is_ddim():
    """DPM-Solver++(2M)'s first step is DPM-Solver++1 = DDIM (Lu et al. 2022b, eq. 8)."""
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 1)
    x = _start(problem, ts)
    a = sample(get_solver("dpmpp_2m"), problem.denoiser, problem.schedule, x, ts).x
    b = sample(get_solver("ddim"), problem.denoiser, problem.schedule, x, ts).x
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_ancestral_is_ddim_eta_one():
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 6)
    x = _start(problem, ts)
    from sdebench.solvers.exponential import DDIM

    a = sample(get_solver("ancestral"), problem.denoiser, problem.schedule, x, ts,
               noise=GaussianIncrements(3)).x
    b = sample(DDIM(1.0), problem.denoiser, problem.schedule, x, ts, noise=GaussianIncrements(3)).x
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_heun_reproduces_exact_vp_flow_map():
    """Heun on the VP PF-ODE, full (rotated) covariance in d = 3, 64 paths: the pathwise max error
    to the exact flow map decreases at order 2 (±0.1), and Richardson extrapolation
    (4 x_{2N} − x_N)/3 removes the h² term, leaving an error 10× below Heun's at N = 512
    (the remainder is O(h³) relative to O(h²) at h ≈ 1/512)."""
    schedule = get_schedule("vp")
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    covariance = q @ torch.diag(torch.tensor([0.05, 0.5, 2.0], dtype=torch.float64)) @ q.T
    problem = GaussianProblem.from_covariance(
        schedule, torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64), covariance
    )
    steps = [128, 256, 512]
    errors, outputs = [], []
    for n in steps:
        ts = log_snr_grid(schedule, n)
        x = _start(problem, ts)
        outputs.append(sample(get_solver("heun"), problem.denoiser, schedule, x, ts).x)
        exact = problem.flow_map(x, ts[0], ts[-1])
        errors.append(float((outputs[-1] - exact).abs().max()))
    assert abs(fitted_order(steps, errors) - 2) <= 0.1, errors
    extrapolated = (4 * outputs[-1] - outputs[-2]) / 3
    assert float((extrapolated - exact).abs().max()) <= errors[-1] / 10


@pytest.mark.parametrize("kind", ["eps", "v", "score"])
def test_adapters_round_trip(kind):
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 4)
    x = _start(problem, ts)
    model = from_denoiser(problem.denoiser, kind, problem.schedule)
    back = as_denoiser(model, kind, problem.schedule)
    for t in ts:
        torch.testing.assert_close(back(x, t), problem.denoiser(x, t), rtol=1e-10, atol=1e-10)


def test_guidance_with_time_t_likelihood_gives_the_posterior_denoiser():
    """Data N(μ, diag λ), observation y = x₀ + N(0, r² I). The posterior x₀|y is N(μ_y, diag λ_y);
    its denoiser must equal guided(prior denoiser, ∇ₓ log p_t(y|x)), where y|x_t ~
    N(x̂₀(x_t), diag(c_t) + r²) with c_t = λσ²/(λ+σ²) and ∂x̂₀/∂x = gain/s (claim 9)."""
    schedule = get_schedule("vp")
    prior = GaussianProblem.random(schedule, 3, seed=4)
    r2 = 0.3
    y = torch.tensor([0.2, -0.4, 1.0], dtype=torch.float64)
    post_var = 1 / (1 / prior.eigenvalues + 1 / r2)
    posterior = GaussianProblem(schedule, post_var * (prior.mean / prior.eigenvalues + y / r2), post_var)
    num = schedule.numeric

    def likelihood_score(x, t):
        s, sigma = num.s(t), num.sigma(t)
        gain = prior.eigenvalues / (prior.eigenvalues + sigma**2)
        c_t = prior.eigenvalues * sigma**2 / (prior.eigenvalues + sigma**2)
        return (gain / s) * (y - prior.denoiser(x, t)) / (c_t + r2)

    conditional = guided(prior.denoiser, likelihood_score, schedule)
    ts = log_snr_grid(schedule, 5)
    x = _start(prior, ts)
    for t in ts:
        torch.testing.assert_close(conditional(x, t), posterior.denoiser(x, t), rtol=1e-10, atol=1e-10)


def test_brownian_tree_is_the_same_path_at_every_resolution():
    tree = BrownianTree(0.0, 1.0, seed=3)
    like = torch.zeros(4000, 1, dtype=torch.float64)
    coarse = tree.increment(0.25, 0.75, like)
    fine = sum(tree.increment(0.25 + k / 16, 0.25 + (k + 1) / 16, like) for k in range(8))
    torch.testing.assert_close(coarse, fine, rtol=0, atol=1e-12)
    again = BrownianTree(0.0, 1.0, seed=3).increment(0.25, 0.75, like)
    torch.testing.assert_close(coarse, again, rtol=0, atol=0)
    # Var = 0.5; n = 4000: SE of the sample variance = 0.5 √(2/3999) ≈ 0.011, 4 SE = 0.045
    assert abs(float(coarse.var()) - 0.5) <= 0.045


def test_brownian_tree_at_arbitrary_times():
    """Arbitrary (non-dyadic) times: Var(W(b) − W(a)) = b − a (n = 4000: SE of the sample variance
    = 0.4154 √(2/3999) ≈ 0.0093, 4 SE = 0.037); a 4-node cache recomputes evicted nodes to the
    same bits and never holds more than 4."""
    like = torch.zeros(4000, 1, dtype=torch.float64)
    a, b = 0.3137, 0.7291
    tree = BrownianTree(0.0, 1.0, seed=8)
    assert abs(float(tree.increment(a, b, like).var()) - (b - a)) <= 0.037
    small = BrownianTree(0.0, 1.0, seed=8, cache_size=4)
    for t in [0.1 + 0.9 * k / 37 for k in range(38)] + [a, b]:
        torch.testing.assert_close(small.value(t, like[:8]), tree.value(t, like[:8]), rtol=0,
                                   atol=0)
        assert small.cached_nodes <= 4


@pytest.mark.parametrize("make_source", [lambda: GaussianIncrements(5),
                                         lambda: PerSampleIncrements(range(6)),
                                         lambda: BrownianTree(0.0, 1.0, seed=5)],
                         ids=["gaussian", "per_sample", "brownian_tree"])
def test_noise_normal_is_the_increment_over_root_dt(make_source):
    """normal = ΔW/√|Δt| draw for draw: two sources with one seed, one asked for each form."""
    like = torch.zeros(6, 3, dtype=torch.float64)
    t_a, t_b = 0.75, 0.5
    increment = make_source().increment(t_a, t_b, like, channel=2)
    normal = make_source().normal(t_a, t_b, like, channel=2)
    torch.testing.assert_close(normal * math.sqrt(0.25), increment, rtol=4 * EPS64, atol=0)


def test_seeded_sampling_is_reproducible():
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 5)
    x = _start(problem, ts)
    for name in BUILTIN_SAMPLERS:
        a = sample(get_solver(name), problem.denoiser, problem.schedule, x, ts, noise=GaussianIncrements(9)).x
        b = sample(get_solver(name), problem.denoiser, problem.schedule, x, ts, noise=GaussianIncrements(9)).x
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("grid", list(GRIDS))
def test_grids_run_from_t_max_to_t_min(grid):
    schedule = get_schedule("vp")
    ts = make_grid(grid, schedule, 7)
    assert ts.shape == (8,) and ts.dtype == torch.float64
    assert float(ts[0]) == float(schedule.t_max) and float(ts[-1]) == float(schedule.t_min)
    assert (ts[1:] < ts[:-1]).all()


@pytest.mark.parametrize("name", BUILTIN_SAMPLERS)
def test_float32_stays_float32(name):
    problem = vp_problem().to(dtype=torch.float32)
    ts = log_snr_grid(problem.schedule, 4)
    x = problem.sample_marginal(ts[0].float(), 8)
    out = sample(get_solver(name), problem.denoiser, problem.schedule, x, ts).x
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def _likelihood_errors(dim, seed, points, **options):
    """PF-ODE log-likelihood minus the exact log p_{t_min} at exact samples (VP, float64)."""
    schedule = get_schedule("vp")
    problem = GaussianProblem.random(schedule, dim, seed=seed)
    t_min = torch.tensor(float(schedule.t_min), dtype=torch.float64)
    t_max = torch.tensor(float(schedule.t_max), dtype=torch.float64)
    x = problem.sample_marginal(t_min, points, torch.Generator().manual_seed(seed))
    estimate = pf_ode_log_likelihood(problem.denoiser, schedule, x,
                                     lambda z: problem.log_density(z, t_max), **options)
    return estimate - problem.log_density(x, t_min)


def test_likelihood_exact_divergence_matches_gaussian_density():
    """RK4 with 400 steps on (x, ∫∇·v): error O(h⁴); stated bound 1e-6 nats in float64."""
    errors = _likelihood_errors(2, 6, 16, steps=400)
    assert float(errors.abs().max()) <= 1e-6


def test_likelihood_hutchinson_is_unbiased_within_its_standard_error():
    """d = 50, 16 Rademacher probes per evaluation: the mean error over 32 points must be within
    4 standard errors (estimated from the 32 errors) of 0, plus 1e-4 for RK4 at 100 steps."""
    errors = _likelihood_errors(50, 7, 32, steps=100, divergence="hutchinson", probes=16)
    standard_error = float(errors.std()) / math.sqrt(errors.numel())
    assert abs(float(errors.mean())) <= 4 * standard_error + 1e-4


def test_mixture_denoiser_is_tweedie():
    """x̂₀ = (x + s²σ²∇log p_t)/s with ∇log p_t from autograd of the exact mixture density."""
    schedule = get_schedule("ve")
    problem = GaussianMixtureProblem.ring(schedule)
    t = torch.tensor(0.3, dtype=torch.float64)
    x = problem.sample_marginal(t, 64, torch.Generator().manual_seed(0)).requires_grad_(True)
    (score,) = torch.autograd.grad(problem.log_density(x, t).sum(), x)
    num = schedule.numeric
    tweedie = (x + num.s(t) ** 2 * num.sigma(t) ** 2 * score) / num.s(t)
    torch.testing.assert_close(problem.denoiser(x.detach(), t), tweedie.detach(), rtol=1e-10, atol=1e-10)


def test_fused_pf_drift_is_the_paper_form():
    """StepContext.pf_drift collects (f − ½g² c_x) x − ½g² c_D x̂₀ in two passes; it must equal
    f x − ½ g² ∇log p_t written as in Song et al. 2021, eq. 13, to round-off: 8 eps relative to
    the size of the terms that cancel, |f x| + ½g² (|c_x x| + |c_D x̂₀|) (c_x ≈ −1/σ² is ~10³
    near t_min, so the score itself is a difference of large terms)."""
    from sdebench.solvers.context import FiniteMonitor, StepContext

    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 4)
    x = _start(problem, ts)
    ctx = StepContext(problem.denoiser, problem.schedule, None, 4, FiniteMonitor("step", ts))
    num = problem.schedule.numeric
    for t in ts:
        denoised = problem.denoiser(x, t)
        paper = num.f(t) * x - 0.5 * num.g2(t) * ctx.score(x, denoised, t)
        c_x, c_denoised = ctx.score_coefficients(t)
        scale = (num.f(t) * x).abs() + 0.5 * num.g2(t) * ((c_x * x).abs() + (c_denoised * denoised).abs())
        assert ((ctx.pf_drift(x, t) - paper).abs() <= 8 * EPS64 * scale).all()


def test_langevin_corrector_reaches_its_stationary_variance():
    """Langevin x' = x + ε ∇log p(x) + √(2ε) z on p = N(0, c) is x' = (1 − ε/c) x + √(2ε) z, whose
    stationary variance is 2c²/(2c − ε) (not c: the O(ε) bias of the unadjusted scheme). On the
    exact law after K steps from variance c the distance to it is (1 − ε/c)^{2K} times the
    initial one: 1e-30 relative for K = 200, ε/c = 0.3, so we compare to 1e-12."""
    from sdebench.problems.law import ExactLawNoise, GaussianLaw
    from sdebench.solvers.sde import langevin_step

    c = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    step = 0.3 * c
    law = GaussianLaw.gaussian(torch.zeros(3, dtype=torch.float64), c.sqrt(), 0)
    noise = ExactLawNoise()
    for _ in range(200):
        law = langevin_step(law, -law / c, step, noise.normal(0.0, 1.0, law))
    torch.testing.assert_close(law.variance, 2 * c**2 / (2 * c - step), rtol=1e-12, atol=0)


def test_sampling_keeps_no_autograd_graph_unless_asked():
    """With a network (parameters that require grad) sample() used to return outputs with
    requires_grad=True and keep every activation: a UNet ran out of memory."""
    problem = vp_problem()
    layer = torch.nn.Linear(4, 4, dtype=torch.float64)

    def network(x, t):
        return problem.denoiser(x, t) + 0 * layer(x)

    ts = log_snr_grid(problem.schedule, 3)
    x = _start(problem, ts, n=4)
    assert not sample(get_solver("heun"), network, problem.schedule, x, ts).x.requires_grad
    with_grad = sample(get_solver("heun"), network, problem.schedule, x, ts, enable_grad=True).x
    assert with_grad.requires_grad


HANDLES_ZERO_SIGMA = sorted(name for name in BUILTIN_SAMPLERS if get_solver(name).handles_zero_sigma)


@pytest.mark.parametrize("name", BUILTIN_SAMPLERS)
def test_grids_ending_at_zero_sigma(name):
    """`edm:sigma_min=0` used to give NaN states from rk4, dpmpp_2m, unipc_bh2 and dpmpp_2m_sde
    with no error. Solvers that divide by σ(t_next) now refuse such a grid; those that declare
    handles_zero_sigma must return finite states."""
    schedule = get_schedule("edm:sigma_min=0")
    problem = GaussianProblem.random(schedule, 3, seed=0)
    ts = make_grid("edm", schedule, 6)
    x = _start(problem, ts, n=8)
    solver = get_solver(name)
    if solver.handles_zero_sigma:
        out = sample(solver, problem.denoiser, schedule, x, ts).x
        assert torch.isfinite(out).all()
    else:
        with pytest.raises(ValueError, match="sigma = 0"):
            sample(solver, problem.denoiser, schedule, x, ts)


def test_the_issue_s_four_samplers_do_not_claim_zero_sigma():
    for name in ("rk4", "dpmpp_2m", "unipc_bh2", "dpmpp_2m_sde"):
        assert name not in HANDLES_ZERO_SIGMA


def test_float32_grids_fit_schedules_with_inexact_end_points():
    """`make_grid(..., dtype=float32)` built grids that sample() rejected when t_min/t_max are
    not float32-exact (vp with t_max = 0.3): the 1e-9 slack was below float32 rounding."""
    schedule = get_schedule("vp:t_max=0.3")
    problem = vp_problem().to(dtype=torch.float32)
    problem.schedule = schedule
    ts = make_grid("logsnr", schedule, 5, dtype=torch.float32)
    x = problem.sample_marginal(ts[0], 4)
    assert torch.isfinite(sample(get_solver("heun"), problem.denoiser, schedule, x, ts).x).all()


def test_seeds_of_any_size_give_unrelated_streams():
    """`seed * 7919 + channel` overflowed for seeds ≥ 2.3e15 (mid-study) and made seed 1's
    channel 0 seed 0's channel 7919; every seed in [0, 2⁶⁴) now works, others are refused."""
    like = torch.zeros(1000, 1, dtype=torch.float64)
    a = GaussianIncrements(0).normal(0.0, 1.0, like, channel=7919)
    b = GaussianIncrements(1).normal(0.0, 1.0, like, channel=0)
    assert not torch.equal(a, b)
    huge = GaussianIncrements(2**64 - 1).normal(0.0, 1.0, like)
    # n = 1000 standard normals: |mean| < 4/√1000 and |var − 1| < 4√(2/999) (4 SE each)
    assert abs(float(huge.mean())) < 4 / math.sqrt(1000)
    assert abs(float(huge.var()) - 1) < 4 * math.sqrt(2 / 999)
    for bad in (-1, 2**64, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an integer >= 0 and < 2\\*\\*64"):
            GaussianIncrements(bad)


class _FixedNoise:
    """The same standard normal for every draw (to compare two writings of one step)."""

    def __init__(self, z):
        self.z = z

    def normal(self, t_a, t_b, like, channel=0):
        return self.z

    def increment(self, t_a, t_b, like, channel=0):
        return self.z * math.sqrt(abs(float(t_b) - float(t_a)))


@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
def test_collected_euler_maruyama_step_is_the_paper_form(eta):
    """EM collects its update as a x + b x̂₀ + c ΔW (two tensor passes); it must equal
    x + [f x − ½(1 + η²) g² ∇log p] Δt + η g ΔW written out (Kloeden & Platen 1992, §9.1)."""
    from sdebench.solvers.context import FiniteMonitor, StepContext
    from sdebench.solvers.sde import EulerMaruyama

    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 3)
    x = _start(problem, ts)
    z = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    noise = _FixedNoise(z)
    ctx = StepContext(problem.denoiser, problem.schedule, noise, 3, FiniteMonitor("step", ts))
    num = problem.schedule.numeric
    t, t_next = ts[0], ts[1]
    dt = t_next - t
    score = ctx.score(x, problem.denoiser(x, t), t)
    paper = (x + (num.f(t) * x - 0.5 * (1 + eta**2) * num.g2(t) * score) * dt
             + eta * num.g(t) * noise.increment(t, t_next, x))
    collected, _ = EulerMaruyama(eta).step(ctx, x, t, t_next, None)
    torch.testing.assert_close(collected, paper, rtol=1e-12, atol=1e-12)


def test_collected_reverse_diffusion_step_is_the_paper_form():
    """Reverse diffusion collects (2 − s/s' + G² c_x) x + G² c_D x̂₀ + G z; Song et al. 2021,
    eq. 46 writes x_mean = x − (s/s' − 1) x + G² ∇log p_t(x), x' = x_mean + G z."""
    from sdebench.solvers.context import FiniteMonitor, StepContext
    from sdebench.solvers.sde import reverse_diffusion_update

    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 3)
    x = _start(problem, ts)
    z = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(4))
    ctx = StepContext(problem.denoiser, problem.schedule, None, 3, FiniteMonitor("step", ts))
    num = problem.schedule.numeric
    t, t_next = ts[1], ts[2]
    g_squared = num.s(t) ** 2 * (num.sigma(t) ** 2 - num.sigma(t_next) ** 2)
    x_mean = x - (num.s(t) / num.s(t_next) - 1) * x + g_squared * ctx.score(
        x, problem.denoiser(x, t), t)
    paper = x_mean + torch.sqrt(g_squared) * z
    torch.testing.assert_close(reverse_diffusion_update(ctx, x, t, t_next, z), paper,
                               rtol=1e-12, atol=1e-12)
