"""The ``table`` schedule (sdebench.theory.beta_tables): the continuous schedule of a discrete
training table meets the table at both ends, inverts its σ, and refuses a table it cannot
describe. The table itself is recomputed here independently, in float64 numpy."""

import numpy as np
import pytest
import torch

from sdebench.theory import get_schedule

SD_TABLE = "table:beta_schedule=scaled_linear:beta_start=0.00085:beta_end=0.012"
TABLES = {  # spec → the table's β's by its published formula, T = 1000
    "table": np.linspace(1e-4, 0.02, 1000),  # Ho et al. 2020, §4
    SD_TABLE: np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2,  # latent diffusion's
}


@pytest.mark.parametrize("spec", TABLES)
def test_the_schedule_meets_its_table_at_both_ends(spec):
    """σ(0) = σ_0 = √(β_0/(1 − β_0)) and σ(1) = σ_{T−1} = √(1/ᾱ_{T−1} − 1), ᾱ_{T−1} =
    Π(1 − β_k). Tolerances: σ_0 from β_0 directly is a few ulps (4u); the float64 product of
    T = 1000 factors carries a relative error up to T·u = 1.1e-13 in ᾱ, half of it in σ ≈ ᾱ^{−½}."""
    betas = TABLES[spec]
    schedule = get_schedule(spec)
    sigma = schedule.numeric.sigma(torch.tensor([0.0, 1.0], dtype=torch.float64)).numpy()
    u = np.finfo(np.float64).eps / 2
    first = np.sqrt(betas[0] / (1 - betas[0]))
    last = np.sqrt(1 / np.prod(1 - betas) - 1)
    assert abs(sigma[0] / first - 1) <= 4 * u
    assert abs(sigma[1] / last - 1) <= 1000 * u
    assert schedule.table.num_train_timesteps == len(betas)


def test_its_sigma_inverse_round_trips_at_the_nodes():
    """t(σ(t)) = t at the table's nodes t = τ/(T − 1) of Stable Diffusion's table, in float64:
    both are a few operations on B(t), whose conditioning near t = 0 (B ≈ β_0 T t) is at most
    B/(t B') ≈ 1 + β_0/(t β̂) ≈ 10³ at τ = 1, hence 10⁴ ulps of t."""
    schedule = get_schedule(SD_TABLE)
    ts = torch.arange(1000, dtype=torch.float64) / 999
    back = schedule.numeric.sigma_inv(schedule.numeric.sigma(ts))
    assert torch.allclose(back, ts, rtol=1e4 * torch.finfo(torch.float64).eps, atol=1e-15)


@pytest.mark.parametrize("spec, named", [
    ("table:beta_schedule=squaredcos_cap_v2", "beta_schedule"),
    ("table:beta_start=0.02:beta_end=0.01", "beta_start"),
    ("table:num_train_timesteps=1", "num_train_timesteps"),
])
def test_a_table_it_cannot_describe_is_refused_by_name(spec, named):
    with pytest.raises(ValueError, match=named):
        get_schedule(spec)
