"""Which ``--device`` values sdebench can run on: one check shared by every command, and the
choice ``--device auto`` makes."""

from __future__ import annotations

AUTO = "auto"
AUTO_GPU_MIN_ELEMENTS = 1 << 16
"""``--device auto`` takes a GPU for a study whose state (batch × d) has at least this many
elements, the CPU below. An estimate, not yet a measurement on a GPU: a step launches ~10–40
kernels (sdebench.studies.traffic counts them), each ~5–10 µs of host time on a GPU whatever its
size, while a CPU core passes over float64 elements at ~1–2 ns each (10–16 GB/s), so a kernel
costs the GPU more than the CPU's pass below ~5·10³ elements; 2¹⁶ leaves a factor of ~10 for the
per-step Python, grid and reference work the GPU does not speed up. (The README's `--sde all`,
d = 4 and batch 256, did not finish in 200 s on an H100 where this CPU takes 50–80 s.)"""


def auto_device(state_elements: int) -> tuple[str, str]:
    """(device, why) for ``--device auto``: ``cuda`` where one is available and the state has at
    least :data:`AUTO_GPU_MIN_ELEMENTS` elements, else ``cpu``; ``why`` is one line for the
    console."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", "--device auto: cpu (no CUDA device here)"
    if state_elements < AUTO_GPU_MIN_ELEMENTS:
        return "cpu", (f"--device auto: cpu, as the state of {state_elements} elements (batch × "
                       f"d) is below {AUTO_GPU_MIN_ELEMENTS}, where a GPU's per-kernel launch "
                       "costs more than the CPU's pass (sdebench.devices.AUTO_GPU_MIN_ELEMENTS)")
    return "cuda", (f"--device auto: cuda ({torch.cuda.get_device_name()}), as the state has "
                    f"{state_elements} elements (batch × d ≥ {AUTO_GPU_MIN_ELEMENTS})")


def device_problem(device: str, *, remote: bool = False) -> str | None:
    """Why ``--device`` cannot run here, in one line naming it, or None. sdebench runs on ``cpu``
    and ``cuda[:N]`` (other torch backends, e.g. ``mps``, lack float64 or were never tested);
    a CUDA device must be present, unless ``remote`` (a dask cluster's workers hold the GPUs)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return f"--device {device!r} is not a device name: expected cpu, cuda or cuda:N"
    if parsed.type not in ("cpu", "cuda"):
        return (f"--device {device!r} is not supported: sdebench runs on cpu or cuda[:N] "
                "(float64 verification; other backends are untested)")
    if parsed.type == "cpu" or remote:
        return None
    if not torch.cuda.is_available():
        return (f"--device {device!r}: no CUDA device is available here (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        return (f"--device {device!r}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}")
    return None
