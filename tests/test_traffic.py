"""The traffic counter (sdebench.studies.traffic) and the bound it feeds (studies.timing.step_bound).

Counts are exact integers, so every assertion here is an equality: an elementwise kernel reads
each operand once and writes its result once, and the sampling loop's own NaN/Inf checks and
noise draws give counts that are known independently of the counter.
"""

import pytest
import torch

from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.studies.timing import CountingNoise, speed_problem, step_bound
from sdebench.studies.traffic import StateTraffic, Traffic, count_traffic

X, Y = torch.ones(8, 16), torch.ones(8, 16)
STATE = X.numel() * X.element_size()


@pytest.mark.parametrize("label, operation, reads, writes, noise", [
    ("y + a x, one kernel", lambda: torch.add(Y, X, alpha=2.0), 2, 1, 0),
    ("scalar tensor times x", lambda: torch.tensor(2.0) * X, 1, 1, 0),
    ("in place reads its target", lambda: Y.clone().add_(X), 3, 2, 0),  # clone 1 + 1, add_ 2 + 1
    ("copy_ overwrites", lambda: torch.empty_like(Y).copy_(X), 1, 1, 0),
    ("out= is written, not read", lambda: torch.mul(X, 2.0, out=torch.empty_like(X)), 1, 1, 0),
    ("views and allocations move nothing", lambda: (X.view(16, 8), X.t(), torch.empty_like(X)),
     0, 0, 0),
    ("a reduction reads", lambda: torch.aminmax(X), 1, 0, 0),
    ("a normal draw writes noise", lambda: torch.randn(X.shape), 0, 1, 1),
    ("randn_like reads only the shape", lambda: torch.randn_like(X), 0, 1, 1),
    ("an in-place draw does not read", lambda: torch.empty_like(X).normal_(), 0, 1, 1),
    ("smaller tensors stay in cache", lambda: X[0] * 2 + torch.ones(16), 0, 0, 0),
    ("cat reads both, writes both", lambda: torch.cat([X, Y]), 2, 2, 0),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_operand_is_read_once_and_each_result_written_once(label, operation, reads, writes,
                                                                noise):
    with StateTraffic(X.numel()) as traffic:
        operation()
    assert (traffic.read_bytes, traffic.write_bytes, traffic.noise_bytes) == (
        reads * STATE, writes * STATE, noise * STATE), label


def test_the_models_own_operations_are_not_counted():
    """Only what the caller does with the model's output counts: the floor times the model."""
    def model(x, t):
        return (x * 3 + 1).exp() - x

    def run(counted_model):
        return counted_model(X, 0.5) + X  # reads the output and X, writes one

    moved = count_traffic(run, model, X.numel())
    assert (moved.read_bytes, moved.write_bytes, moved.kernels) == (2 * STATE, STATE, 1)


CASES = [name for name in BUILTIN_SAMPLERS if name != "rk45"]


def _traffic(name, check_finite, steps=3):
    problem = speed_problem(8, "float64", "cpu", "diagonal")
    ts = log_snr_grid(problem.schedule, steps)
    x = problem.sample_marginal(ts[0], 4)
    noise = CountingNoise(GaussianIncrements(0))
    result = {}

    def run(model):
        result["nfe"] = sample(get_solver(name), model, problem.schedule, x, ts, noise=noise,
                               check_finite=check_finite).nfe

    moved = count_traffic(run, problem.denoiser, x.numel())
    return moved, result["nfe"], noise.draws, x.numel() * x.element_size()


@pytest.mark.parametrize("name", CASES)
def test_the_loops_checks_and_draws_are_counted_exactly(name):
    """Independent counts from the loop itself: with ``check_finite="step"`` each check is one
    aminmax over one state — the initial state, every model output and every state — so the
    run reads (1 + NFE + steps) states more than with ``"off"`` and writes nothing more; and
    every noise draw writes exactly one state (torch.randn)."""
    steps = 3
    checked, nfe, draws, state = _traffic(name, "step", steps)
    unchecked, nfe_off, _, _ = _traffic(name, "off", steps)
    assert nfe == nfe_off
    assert checked.read_bytes - unchecked.read_bytes == (1 + nfe + steps) * state
    assert checked.write_bytes == unchecked.write_bytes
    assert checked.noise_bytes == draws * state
    assert (draws > 0) == get_solver(name).stochastic


def test_euler_moves_eight_states_a_step():
    """Euler on the PF-ODE, read off the code: the drift (f − ½g²c_x) x − ½g²c_D x̂₀ is a scaled
    copy (read x, write) and an axpy (read two, write one), the update x + Δt k another axpy:
    5 + 3 = 8 states a step, with no NaN/Inf checks."""
    moved, _, _, state = _traffic("euler", "off", steps=3)
    assert moved.bytes == 3 * 8 * state and moved.noise_bytes == 0


def test_the_bound_charges_model_draws_and_other_bytes_at_their_own_costs():
    """NFE × floor + draws × draw + (bytes − noise bytes)/bandwidth, with round numbers."""
    moved = Traffic(read_bytes=600, write_bytes=400, noise_bytes=100, kernels=7)
    assert step_bound(moved, nfe=4, draws=2, floor=1.0, draw=0.5, bandwidth=100.0) == pytest.approx(
        4 * 1.0 + 2 * 0.5 + 900 / 100.0, rel=1e-15)


def test_a_state_without_elements_is_refused():
    with pytest.raises(ValueError, match="state_numel must be >= 1, got 0"):
        StateTraffic(0)


def test_a_wrapper_s_calls_are_taken_out_of_a_run_exactly():
    """A model seen through a wrapper (x − D(x))/2, called twice in a run that adds its outputs:
    the run less 2 × one wrapper call is the run's own sum alone (read two, write one)."""
    def wrapped(model):
        return lambda x: (x - model(x)) / 2

    def run(model):
        wrapper = wrapped(model)
        return wrapper(X) + wrapper(Y)

    call = StateTraffic(X.numel())
    counted = wrapped(call.model(torch.sin))
    with call:
        counted(X)
    own = count_traffic(run, torch.sin, X.numel()).without(call.result(), 2)
    assert (own.read_bytes, own.write_bytes, own.noise_bytes, own.kernels) == (2 * STATE, STATE, 0, 1)
    with pytest.raises(ValueError, match="3 × Traffic"):
        count_traffic(run, torch.sin, X.numel()).without(call.result(), 3)
