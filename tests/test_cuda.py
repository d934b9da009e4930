"""On a CUDA device: the sampling loop makes no host synchronisation, and float64 results on the
GPU equal those on the CPU to round-off.

These tests need a GPU. Without one they are skipped with that reason (``pytest -ra`` lists
them); ``SDEBENCH_REQUIRE_CUDA=1`` turns the missing device into a failure, for runs on a GPU
machine. On the CPU, ``tests/test_device_readiness.py`` checks the same loop on PyTorch's
``meta`` device.
"""

import os
import warnings

import pytest
import torch

from sdebench.problems import get_problem
from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.context import FiniteMonitor
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.solvers.solver import unit_roundoff
from sdebench.theory import get_schedule
from tests.helpers import vp_problem
from tests.test_device_readiness import HOST_DRIVEN, SYNC_FREE

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() and os.environ.get("SDEBENCH_REQUIRE_CUDA") != "1",
    reason="no CUDA device (SDEBENCH_REQUIRE_CUDA=1 makes this a failure)",
)

STEPS = 6
DIM = 4
BATCH = 64


def host_syncs(run) -> int:
    """How many times ``run()`` blocks the host on the device: CUDA's sync debug mode warns at
    every device→host read and every blocking copy, as a profiler would show a stall."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


@pytest.mark.parametrize("name", SYNC_FREE)
def test_the_sampling_loop_makes_no_host_sync_on_cuda(name, monkeypatch):
    """Every sampler but rk45 (host-driven step control), with the deferred finite check and the
    grid on the CPU, never blocks the host, for 3 steps as for 12. A first run makes the
    process's one-time CUDA set-up (on an H100 the first run of the session blocked once); the
    check's single read at the end is recorded instead of made."""
    problem = vp_problem(DIM)
    on_gpu = problem.to(device="cuda")
    finished = []
    monkeypatch.setattr(FiniteMonitor, "finish", lambda self: finished.append(self._first_bad))

    def run(steps):
        x = torch.zeros(BATCH, DIM, dtype=torch.float64, device="cuda")
        ts = log_snr_grid(problem.schedule, steps)
        return sample(get_solver(name), on_gpu.denoiser, problem.schedule, x, ts,
                      noise=GaussianIncrements(seed=0), check_finite="end")

    run(3)  # warm-up
    syncs = {steps: host_syncs(lambda steps=steps: run(steps)) for steps in (3, 12)}
    assert syncs == {3: 0, 12: 0}, f"host syncs by step count: {syncs}"
    assert finished and all(flag.device.type == "cuda" for flag in finished)


@pytest.mark.parametrize("name", [n for n in BUILTIN_SAMPLERS if not get_solver(n).stochastic
                                  and n not in HOST_DRIVEN])  # rk45: round-off may flip a step
def test_deterministic_samplers_give_the_cpu_result_on_cuda(name):
    """Same start, same float64 arithmetic: the GPU may only reorder sums. Each evaluation
    perturbs the state by a few units of round-off (u = 2^-53) relative to its size, and a
    stable solver carries at most a bounded multiple of that per step: |Δx| ≤ 64·NFE·u·max|x|,
    with 64 covering d = 4 reductions and the solver's combination of stages."""
    assert_cuda_gives_the_cpu_result(name, vp_problem(DIM))


def assert_cuda_gives_the_cpu_result(name: str, problem) -> None:
    """``name`` from the same start on the CPU and on CUDA: the same NFE, and outputs within
    64·NFE·u·max|x| of each other, u the unit round-off of what the sampler computes in."""
    ts = log_snr_grid(problem.schedule, STEPS)
    x = problem.sample_marginal(ts[0], BATCH, torch.Generator().manual_seed(3))
    on_cpu = sample(get_solver(name), problem.denoiser, problem.schedule, x, ts)
    on_gpu = sample(get_solver(name), problem.to(device="cuda").denoiser, problem.schedule,
                    x.cuda(), ts)
    roundoff = 64 * on_cpu.nfe * unit_roundoff(get_solver(name), x.dtype) * on_cpu.x.abs().max()
    assert on_gpu.x.device.type == "cuda" and on_gpu.nfe == on_cpu.nfe
    assert (on_gpu.x.cpu() - on_cpu.x).abs().max() <= roundoff


@pytest.mark.parametrize("name", [
    pytest.param("kdiffusion.euler", marks=pytest.mark.peers("k-diffusion")),
    *(pytest.param(name, marks=pytest.mark.peers("diffusers"))
      for name in ("diffusers.EulerDiscreteScheduler", "diffusers.DDIMScheduler"))])
def test_peers_give_the_cpu_result_on_cuda(name):
    """The peer libraries' loops on a CUDA state (diffusers' timesteps then live on the GPU, and
    its network must not mix CPU tables into their kernels) agree with their CPU runs to the
    round-off bound above, with u the peer's own precision (float32 for diffusers)."""
    assert_cuda_gives_the_cpu_result(name, get_problem("gaussian", get_schedule("edm"), dim=DIM,
                                                       seed=1))
