"""Which ``--device`` values sdebench can run on: one check shared by every command."""

from __future__ import annotations


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
