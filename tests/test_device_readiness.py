"""GPU readiness, checked on the CPU: the state on PyTorch's ``meta`` device holds no data, so
any host read inside the loop (``.item()``, ``float(t)``, ``bool(flag)``) raises — the same reads
that would stall an accelerator's queue. The grid stays on the CPU (schedule coefficients are
host scalars), as recommended for accelerators in :func:`sdebench.solvers.loop.sample`."""

import pytest
import torch

from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.context import FiniteMonitor
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.state import NoiseSource
from tests.helpers import vp_problem


class DeviceNormals(NoiseSource):
    """Unseeded normals drawn on the state's device (meta tensors accept no generator)."""

    def normal(self, t_a, t_b, like, channel=0):
        return torch.randn(like.shape, dtype=like.dtype, device=like.device)


HOST_DRIVEN = {"rk45": "adaptive step-size control decides on the host by design"}
SYNC_FREE = [name for name in BUILTIN_SAMPLERS if name not in HOST_DRIVEN]


@pytest.mark.parametrize("name", SYNC_FREE)
def test_sampling_loop_reads_nothing_back_from_the_device(name, monkeypatch):
    """Every sampler but rk45 runs 3 steps on a meta state with the deferred finite check; the
    check's one host read is at the end (patched out here), none inside the loop."""
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 3)
    x = torch.empty(5, problem.dim, dtype=torch.float64, device="meta")
    meta_problem = problem.to(device="meta")
    finished = []
    monkeypatch.setattr(FiniteMonitor, "finish", lambda self: finished.append(self._first_bad))
    result = sample(get_solver(name), meta_problem.denoiser, problem.schedule, x, ts,
                    noise=DeviceNormals(), check_finite="end")
    assert result.x.device.type == "meta" and result.x.shape == x.shape
    assert finished and finished[0].device.type == "meta"  # the flag never left the device


def test_the_deferred_check_reads_the_device_once_at_the_end():
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 3)
    x = torch.empty(5, problem.dim, dtype=torch.float64, device="meta")
    with pytest.raises(RuntimeError, match="meta"):
        sample(get_solver("heun"), problem.to(device="meta").denoiser, problem.schedule, x, ts,
               check_finite="end")


def test_the_default_check_defers_on_a_device_state():
    """check_finite="auto" (the default) is "end" for a state off the CPU: the meta run reaches
    the final read, and only that read raises."""
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 3)
    x = torch.empty(5, problem.dim, dtype=torch.float64, device="meta")
    steps_run = []
    with pytest.raises(RuntimeError, match="meta"):
        sample(get_solver("heun"), problem.to(device="meta").denoiser, problem.schedule, x, ts,
               callback=lambda i, *_: steps_run.append(i))
    assert steps_run == [0, 1, 2]


# --- --device auto ---------------------------------------------------------------------------

@pytest.mark.parametrize("cuda, elements, chosen", [
    (False, 10**9, "cpu"),  # no GPU: the CPU whatever the size
    (True, (1 << 16) - 1, "cpu"),  # below the launch-bound estimate
    (True, 1 << 16, "cuda"),
])
def test_auto_picks_a_gpu_only_for_a_state_large_enough_and_says_why(cuda, elements, chosen,
                                                                      monkeypatch):
    from sdebench.devices import AUTO_GPU_MIN_ELEMENTS, auto_device

    assert AUTO_GPU_MIN_ELEMENTS == 1 << 16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "a test GPU")
    device, why = auto_device(elements)
    assert device == chosen and why.startswith(f"--device auto: {chosen}")
    assert ("no CUDA device" in why) == (not cuda)


def test_a_study_with_device_auto_records_the_device_it_ran_on(tmp_path, capsys):
    """d = 4, batch 256: 1024 elements, so the CPU (here, and on a machine with a GPU)."""
    from sdebench.experiments.convergence import main

    assert main(["--sde", "vp", "--samplers", "euler", "--steps", "4,8", "--device", "auto",
                 "--out", str(tmp_path), "--no-report", "--quiet"]) == 0
    assert "--device auto: cpu" in capsys.readouterr().err
    import pandas as pd

    assert set(pd.read_csv(next(tmp_path.glob("*.csv"))).device) == {"cpu"}
