"""Grids from a pure-noise start (rf, rf with shift 3, vp0snr): the ``graded`` grid keeps the
λ-step methods' orders, a grid uniform in t does not (theory/claims/pure_noise_grids.py proves
why: near the noise a uniform-t grid has e^{λ_k} ∝ k/N, which costs an order-p λ-method the rate
N^{−min(p, 2)}, with log N at p = 2)."""

import math

import pytest
import torch

from sdebench.solvers.grids import make_grid
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.theory import get_schedule

A = 0.5
"""The graded grid's default exponent: e^{aλ} is uniform near the noise."""


@pytest.mark.parametrize("spec", ["rf", "rf:shift=3", "vp0snr"])
def test_the_graded_grid_is_uniform_in_exp_a_lambda_near_the_noise(spec):
    """e^{aλ_k} = expm1(aφ_k) with φ_k = kΔ, so e^{aλ_k}/(k e^{aλ_1}) = 1 + O(aΔk): within
    aΔk (the expm1 series' next term ≤ aΔk/2, doubled for the ratio) of 1 for the first points,
    with λ recomputed from the grid's times in float64 (round-off ~10⁻¹², far below)."""
    schedule = get_schedule(spec)
    steps = 4096
    ts = make_grid("graded", schedule, steps)
    assert float(ts[0]) == float(schedule.t_max) and float(ts[-1]) == float(schedule.t_min)
    lam = schedule.numeric.half_log_snr(ts[1:7])
    assert math.isinf(float(schedule.numeric.half_log_snr(ts[:1])))
    lam_end = float(schedule.numeric.half_log_snr(ts[-1:]))
    delta = math.log1p(math.exp(A * lam_end)) / A / steps
    k = torch.arange(1, 7, dtype=torch.float64)
    ratio = torch.exp(A * lam) / (k * torch.exp(A * lam[0]))
    assert torch.all((ratio - 1).abs() <= A * delta * k), ratio


@pytest.mark.parametrize("spec, expected", [("rf", "graded"), ("vp0snr", "graded"),
                                            ("vp", "logsnr"), ("edm:sigma_min=0", "uniform")])
def test_the_auto_grid_is_graded_exactly_on_pure_noise_starts(spec, expected):
    schedule = get_schedule(spec)
    torch.testing.assert_close(make_grid("auto", schedule, 32), make_grid(expected, schedule, 32),
                               rtol=0, atol=0)


def test_a_grid_without_a_finite_end_is_refused_with_the_remedy():
    with pytest.raises(ValueError, match="--grid edm or --grid uniform"):
        make_grid("graded", get_schedule("edm:sigma_min=0"), 8)


def _orders(grid: str):
    """Exact-law W₂ orders of the λ-multistep samplers on rf from t = 1 (Gaussian data, d = 3),
    at 128–1024 steps (the graded grid's slopes are within 0.06 of the order there, measured)."""
    config = StudyConfig(schedules=["rf"], samplers=["dpmpp_2m", "unipc_bh2"],
                         steps=[128, 256, 512, 1024], grid=grid, dim=3, batch=8)
    orders = run_study(config, None, progress=False, trajectories=False).orders
    return orders[orders.metric == "w2"].set_index("sampler")


def test_lambda_multistep_samplers_reach_their_orders_on_the_graded_grid():
    orders = _orders("graded")
    assert orders.verdict.to_dict() == {"dpmpp_2m": "PASS", "unipc_bh2": "PASS"}, orders


def test_a_grid_uniform_in_t_costs_them_their_order():
    """The same study on a grid uniform in t: DPM-Solver++(2M) converges like N^{−2} log N, whose
    local slopes 2 − log₂(log 2N / log N) are 1.83–1.85 at these N, so it fails order 2 by more
    than its CI (1.86 ± 0.03 measured)."""
    orders = _orders("uniform")
    assert orders.verdict["dpmpp_2m"] == "FAIL", orders.loc["dpmpp_2m"].to_dict()


def test_a_pure_noise_study_defaults_to_step_counts_that_reach_the_asymptotic_regime():
    """4–4096 steps where every schedule starts at pure noise (the λ-multistep samplers' slopes
    settle only beyond 256 steps there); a study that mixes in another schedule (``--sde all``)
    keeps 4–256, and given step counts are kept."""
    from sdebench.studies.config import DEFAULT_STEPS, PURE_NOISE_STEPS

    def steps(schedules, given=None):
        return StudyConfig(schedules=schedules, samplers=["euler"], steps=given).steps

    assert steps(["rf", "vp0snr"]) == PURE_NOISE_STEPS and max(PURE_NOISE_STEPS) == 4096
    assert steps(["vp", "rf"]) == DEFAULT_STEPS
    assert steps(["rf"], [8, 16]) == (8, 16)
