"""diffusers' schedulers on a training table as it ships (``table`` schedules; peers/diffusers.py,
"Stock tables"): the scheduler builds the table itself, the keywords that would set it elsewhere
are refused, its step limit is the table's, and a last step to σ = 0 is judged against the
floor it leaves (the stock ``final_sigmas_type="zero"``).

Marked ``peers``: skipped without the peer libraries (CI requires them)."""

import math

import pytest
import torch

from sdebench.peers.audit import SD_TABLE
from sdebench.peers.diffusers import TABLE_FLOOR_MULTIPLE
from sdebench.problems import get_problem
from sdebench.registry import SpecError
from sdebench.solvers import get_solver, make_grid
from sdebench.theory import get_schedule

pytestmark = [pytest.mark.peers, pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers")]

SD = get_schedule(SD_TABLE)


@pytest.mark.parametrize("spec", ["diffusers.DDIMScheduler", "diffusers.EulerDiscreteScheduler",
                                  "diffusers.DPMSolverMultistepScheduler"])
def test_the_scheduler_holds_the_table_diffusers_builds_as_it_ships(spec):
    """Bit for bit the ᾱ's of a scheduler made from Stable Diffusion's config alone (diffusers'
    own construction, in float32), not a table sdebench computed and passed as trained_betas."""
    import diffusers

    shipped = diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                      beta_end=0.012, num_train_timesteps=1000)
    scheduler = get_solver(spec)._scheduler_for(SD, 8)
    assert torch.equal(scheduler.alphas_cumprod, shipped.alphas_cumprod)


def test_the_keywords_that_would_set_a_table_are_refused_naming_the_schedule():
    with pytest.raises(SpecError, match="beta_schedule would set its training table.*"
                                        "table:beta_schedule="):
        get_solver("diffusers.DDIMScheduler:beta_schedule=linear")


def test_train_steps_beside_a_table_schedule_is_refused():
    peer = get_solver("diffusers.DDIMScheduler:train_steps=64")
    assert "a training table of its own (1000 entries)" in peer.schedule_refusal(SD)
    with pytest.raises(SpecError, match="train_steps=64"):
        peer.check_options(SD, (8,))


def test_the_step_limit_is_the_table_s_own():
    """DDIM lands on the table's entries: at most T = 1000 steps on a 1000-entry table (1024 on
    the table sdebench builds by default)."""
    peer = get_solver("diffusers.DDIMScheduler")
    peer.check_options(SD, (8, 1000))
    with pytest.raises(SpecError, match=r"at most 1000 steps, got 1001 \(the schedule"):
        peer.check_options(SD, (8, 1001))


def test_a_last_step_to_zero_is_judged_against_the_floor_it_leaves():
    """With the stock final_sigmas_type="zero", DPM-Solver's last step from the table's σ_min
    goes to σ = 0 with x̂₀ = D: its N → ∞ output is p at σ_min denoised, whose variance per
    data eigenvalue λ is λ²/(λ + σ²) instead of λ + σ², a W₂ of √Σ σ⁴/(λ + σ²) in x̃ = x/s
    (Stable Diffusion's σ_min = 0.029 makes it 2.3e-3 here: a floor, where an order was fitted
    into the data before). The floor is TABLE_FLOOR_MULTIPLE times that, to round-off."""
    problem = get_problem("gaussian", SD, dim=4, seed=0)
    ts = make_grid("logsnr", SD, 8)
    floor, kind = get_solver("diffusers.DPMSolverMultistepScheduler:final_sigmas_type=zero") \
        .error_floor(problem, ts)
    numeric = SD.numeric
    s, sigma = float(numeric.s(ts[-1])), float(numeric.sigma(ts[-1]))
    data = problem.marginal_law(ts[-1]).variance.double() / s**2 - sigma**2
    expected = s * math.sqrt(float((sigma**4 / (data + sigma**2)).sum()))
    assert kind == "σ = 0 end"
    assert floor == pytest.approx(TABLE_FLOOR_MULTIPLE * expected, rel=1e-9)
    assert get_solver("diffusers.DPMSolverMultistepScheduler").error_floor(problem, ts) is None


def test_the_table_sdebench_reads_is_the_schedule_s_own():
    """sigma_table (the σ range of KarrasVe and ScoreSdeVe, the float32 check's message) on a
    table schedule: its T entries, equal to the float64 product Π(1 − β_k) of the published β's
    to its accumulated round-off, T·u relative in ᾱ (σ ≈ ᾱ^{−½} near the end; near σ_min,
    σ² = 1/ᾱ − 1 amplifies it by 1/(1 − ᾱ) ≈ 1/β_0 ≈ 1.2e3)."""
    import numpy as np

    from sdebench.peers.diffusers import sigma_table

    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    alphas_cumprod = np.cumprod(1 - betas)
    expected = np.sqrt(1 / alphas_cumprod - 1)
    table = sigma_table(SD).numpy()
    u = np.finfo(np.float64).eps / 2
    assert table.shape == (1000,)
    assert np.all(np.abs(table / expected - 1) <= 1000 * u / (1 - alphas_cumprod))
