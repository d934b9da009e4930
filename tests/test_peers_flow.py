"""diffusers' flow-matching schedulers as peers (sdebench.peers.diffusers, "Flow matching"):
FlowMatchEuler/Heun against their twins, the stochastic_sampling law against its hand-derived
recursion, the flow modes of the multistep solvers against their N → ∞ limit, and the refusals.

Gaussian data (exact output laws, probed), float64 states; the schedulers compute in float32
(their σ_f grid and step), so round-off tolerances are float32's."""

import pytest
import torch

from sdebench.peers.agreement import peer_grid
from sdebench.problems import get_problem
from sdebench.problems.law import ExactLawNoise
from sdebench.registry import SpecError
from sdebench.solvers import get_solver, make_grid, sample
from sdebench.solvers.solver import unit_roundoff
from sdebench.studies import StudyConfig, run_study
from sdebench.studies.config import refused_samplers, resolve_sections
from sdebench.studies.conformance import conformance_table
from sdebench.studies.metrics import UnitRun
from sdebench.theory import get_schedule

pytestmark = [pytest.mark.peers("diffusers"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers")]

RF = get_schedule("rf")
EULER = "diffusers.FlowMatchEulerDiscreteScheduler"
HEUN = "diffusers.FlowMatchHeunDiscreteScheduler"
DPM_FLOW = "diffusers.DPMSolverMultistepScheduler:use_flow_sigmas=True"


def data_w2(peer, problem, steps: int) -> float:
    """W₂ between the peer's exact output law at ``steps`` (auto grid) and the data law (t = 0)."""
    schedule = problem.schedule
    grid = make_grid("auto", schedule, steps)
    law = sample(peer, problem.denoiser, schedule, problem.marginal_law(grid[0]), grid,
                 noise=ExactLawNoise()).x
    return float(problem.w2(law, torch.zeros((), dtype=torch.float64)))


def unit(name: str, schedule, steps: int, dim: int = 4) -> UnitRun:
    problem = get_problem("gaussian", schedule, dim=dim, seed=0)
    return UnitRun(problem, get_solver(name), steps, grid="auto", batch=8, seed=0)


@pytest.mark.parametrize("schedule, samplers", [
    ("rf", [EULER, HEUN]), ("rf:shift=3", [f"{EULER}:shift=3.0"])])
def test_flow_match_euler_and_heun_are_ddim_and_heun_to_round_off(schedule, samplers):
    """Euler in σ_f on x_f is DDIM on the same σ's (theory/claims/flow.py), Heun in σ_f is
    sdebench's heun in t on rf (σ_f = t), and both end with the jump x̂₀ to σ_f = 0; on the
    peer's own grid the twins agree to the measured round-off floor at every step count (the
    study's agreement rule), with SD3's shifted grid on the shifted schedule too."""
    config = StudyConfig(schedules=[schedule], samplers=samplers, steps=[4, 16, 64],
                         metrics=["agreement"], grid="auto")
    study = run_study(config, progress=False, trajectories=False)
    assert not (study.results.status == "failed").any(), study.results.error.unique()
    table = conformance_table(study.results, study.orders).set_index("sampler")
    for sampler in samplers:
        assert table.agrees[sampler] == "yes: round-off at every step count", sampler


def test_a_grid_below_the_schedules_range_has_no_twin_run():
    """Stock FlowMatchEuler (shift 1) on rf:shift=3 steps to σ_f = 1/T, t = 1/2998 < t_min:
    in a study its agreement row fails with the reason and the remedy, and its W₂ row, which
    needs no twin, is still measured (a metric that raises fails its own row only)."""
    config = StudyConfig(schedules=["rf:shift=3"], samplers=[EULER], steps=[8],
                         metrics=["w2", "agreement"], grid="auto")
    rows = run_study(config, progress=False, trajectories=False).results.set_index("metric")
    assert rows.status["w2"] == "ok" and rows.value["w2"] > 0
    assert rows.status["agreement"] == "failed" and "shift=3.0" in rows.error["agreement"]


def test_flow_match_euler_reaches_first_order_from_pure_noise():
    """Exact-law W₂ on rf, its own grid from σ_f = 1: first order by the study's rule."""
    config = StudyConfig(schedules=["rf"], samplers=[EULER], steps=[64, 128, 256],
                         metrics=["w2"], grid="auto")
    orders = run_study(config, progress=False, trajectories=False).orders.set_index("sampler")
    assert orders.verdict[EULER] == "PASS", orders.loc[EULER].to_dict()


def test_the_output_is_judged_at_the_data():
    """The flow schedulers end at σ_f = 0: their output time is t = 0, not the study's t_min,
    and a metric whose reference ends at t_min refuses them, naming the ones that can judge."""
    run = unit(EULER, RF, 8)
    assert float(run.t_end) == 0.0 and float(run.ts[-1]) == float(RF.t_min)
    with pytest.raises(ValueError, match="w2, sliced_w2"):
        run.require_output_at_grid_end("ref_error")
    assert float(peer_grid(run)[-1]) >= float(RF.t_min)  # the twin's jump takes the rest


def test_stochastic_sampling_law_is_its_re_noising_recursion():
    """stochastic_sampling draws its own noise (randn_tensor in its module, served by the probe)
    and steps x' = (1 − σ') x̂₀ + σ' z, z fresh, x̂₀ = D(x; σ). On rf with Gaussian data,
    per eigen-coordinate (variance c, mean m), D = m + a (x − (1 − σ) m) with
    a = c(1 − σ)/((1 − σ)² c + σ²), so mean and variance follow
        μ' = (1 − σ')(m + a (μ − (1 − σ) m)),   v' = (1 − σ')² a² v + σ'²,
    from μ = 0, v = 1 at σ = 1, on its float32 σ's. The probed law matches it within 10 times
    float32's unit round-off per step (each step rounds the state once), on a unit scale."""
    name = f"{EULER}:stochastic_sampling=True"
    run = unit(name, RF, 16)
    problem = run.problem
    assert problem.eigenvectors is None  # eigen-coordinates: the law is per coordinate
    scheduler = get_solver(name)._scheduler(RF)
    scheduler.set_timesteps(16)
    c, m = problem.eigenvalues, problem.mean
    mu, v = torch.zeros_like(c), torch.ones_like(c)
    sigmas = scheduler.sigmas.double()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        a = c * (1 - sigma) / ((1 - sigma) ** 2 * c + sigma**2)
        mu = (1 - sigma_next) * (m + a * (mu - (1 - sigma) * m))
        v = (1 - sigma_next) ** 2 * a**2 * v + sigma_next**2
    tolerance = 10 * unit_roundoff(None, torch.float32) * 16
    assert (run.law.mean - mu).abs().max() <= tolerance * (1 + m.abs().max())
    assert (run.law.variance.sqrt() - v.sqrt()).abs().max() <= tolerance
    solver = get_solver(name)
    assert solver.order is None and "not a discretisation" in solver.order_note


def test_flow_mode_converges_to_its_limit_not_to_the_data():
    """DPMSolverMultistep with use_flow_sigmas starts at the shifted 1 − 1/T and feeds its
    network ⌊σ_f T⌋: as N grows its output law tends to flow_limit_law (that ODE, solved
    finely), not to the data. Its error to the data tends to F = W₂(limit, data) at least at
    first order: |e(256) − F| ≤ ½ |e(128) − F|, and the study's floor is 15 F."""
    problem = get_problem("gaussian", RF, dim=4, seed=0)
    peer = get_solver(DPM_FLOW)
    errors = {steps: data_w2(peer, problem, steps) for steps in (128, 256)}
    floor, kind = peer.error_floor(problem, make_grid("auto", RF, 256))
    limit = floor / 15
    assert abs(errors[256] - limit) <= 0.5 * abs(errors[128] - limit), (errors, limit)
    assert limit > 1e-3 and "int timesteps" in kind  # ≫ round-off: a finding, not noise


@pytest.mark.parametrize("name", [EULER, DPM_FLOW])
def test_a_schedule_without_pure_noise_is_refused_and_the_rest_run(name):
    """A flow scheduler starts at σ_f ≈ 1: on vp (s(1) ≠ 0) the study names it with the reason
    and runs the others; running it directly raises the same reason."""
    vp = get_schedule("vp")
    config = StudyConfig(schedules=["vp"], samplers=["euler", name], steps=[8])
    refused = refused_samplers(config, resolve_sections(config)[0])
    assert list(refused) == [name] and "rf, rf:shift=3, vp0snr" in refused[name]
    with pytest.raises(SpecError, match="pure-noise end"):
        get_solver(name).check_options(vp, [8])


def test_a_non_flow_prediction_type_is_refused_in_flow_mode():
    with pytest.raises(SpecError, match="v = ε − x₀"):
        get_solver(f"{DPM_FLOW}:prediction_type=epsilon")
    assert get_solver(DPM_FLOW).parameters()["prediction_type"] == "flow_prediction"


def test_flow_match_heun_tends_to_its_last_jump_not_to_the_data():
    """FlowMatchHeun ends with the jump x̂₀ = D(x; σ_f,min) from a σ_f,min that N does not move:
    its output law tends to that jump from the exact marginal, whose variances are
    λ²/(λ + σ²) at σ = σ_f,min/(1 − σ_f,min) (the posterior mean's variance, Gaussian data),
    not λ. With SD3's shift 3 (σ_f,min = 0.0089: the shift applied twice, diffusers#13243) the
    W₂ gap F ≈ 1e-4 is reached at second order: |e(256) − F| ≤ ½ |e(128) − F| (2⁻² = ¼
    asymptotically), and the study's floor is 15 F."""
    schedule = get_schedule("rf:shift=3")
    problem = get_problem("gaussian", schedule, dim=4, seed=0)
    peer = get_solver(f"{HEUN}:shift=3.0")
    ts = make_grid("auto", schedule, 256)
    scheduler = peer._scheduler(schedule)
    scheduler.set_timesteps(256)
    sigma_f = scheduler.sigmas[-2].double()
    shifted = 3 * 0.001 / (1 + 2 * 0.001)  # SD3's shift of 1/T, once: 0.0029940
    assert float(sigma_f) == pytest.approx(3 * shifted / (1 + 2 * shifted), rel=1e-6)  # twice
    sigma = sigma_f / (1 - sigma_f)
    eigenvalues = problem.eigenvalues
    jump = peer.jump_limit_law(problem, ts)
    assert torch.allclose(jump.variance, eigenvalues**2 / (eigenvalues + sigma**2), rtol=1e-12)
    limit = float(problem.w2(jump, torch.zeros((), dtype=torch.float64)))
    errors = {steps: data_w2(peer, problem, steps) for steps in (128, 256)}
    assert abs(errors[256] - limit) <= 0.5 * abs(errors[128] - limit), (errors, limit)
    assert peer.error_floor(problem, ts)[0] == pytest.approx(15 * limit, rel=1e-12)


@pytest.mark.parametrize("method", ["DEISMultistepScheduler", "SASolverScheduler"])
def test_deis_and_sa_solver_flow_modes_stop_short_of_the_data(method):
    """Finding: with use_flow_sigmas, DEIS and SA-Solver repeat their last σ_f, (1 − 1/T)/N
    (a zero-length last step), instead of ending at 0, so the sample a pipeline decodes keeps
    noise of that level: against the data law the error is ~ σ_f,last = O(1/N), first order
    whatever the solver's order. DEIS (declared order 2) gets FAIL on rf, measured between 1
    and 1.25 (e = a/N + b/N² has local slopes in (1, 2), tending to 1)."""
    name = f"diffusers.{method}:use_flow_sigmas=True"
    scheduler = get_solver(name)._scheduler(RF)
    scheduler.set_timesteps(8)
    last = scheduler.sigmas[-2:].double()
    assert float(last[0]) == float(last[1]) == pytest.approx((1 - 1 / 1000) / 8, rel=1e-6)
    if method == "DEISMultistepScheduler":
        config = StudyConfig(schedules=["rf"], samplers=[name], steps=[8, 16, 32],
                             metrics=["w2"], grid="auto")
        row = run_study(config, progress=False, trajectories=False).orders.iloc[0]
        assert row.verdict == "FAIL" and 1 <= row.measured_order <= 1.25, row.to_dict()


def test_ipndm_is_first_order_from_pure_noise():
    """Finding (experiments/findings/ipndm_first_step.py): IPNDM, fourth order by its docstring,
    runs its own grid from pure noise (α = 0) to the data; its first step takes x̂₀ = 0 instead
    of E[x₀] = −v, an O(1/N) error on data with a non-zero mean (the catalogue's Gaussian): FAIL
    at first order, within 0.1 (e = a/N + b/N⁴, a ≠ 0). A schedule without a pure-noise end is
    refused with the reason."""
    name = "diffusers.IPNDMScheduler"
    config = StudyConfig(schedules=["rf"], samplers=[name], steps=[64, 128, 256],
                         metrics=["w2"], grid="auto")
    row = run_study(config, progress=False, trajectories=False).orders.iloc[0]
    assert row.verdict == "FAIL" and abs(row.measured_order - 1) <= 0.1, row.to_dict()
    assert "starts at pure noise (α = 0)" in get_solver(name).schedule_refusal(get_schedule("vp"))
