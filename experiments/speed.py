"""Speed relative to the floor: wall time / (NFE × one denoiser evaluation).

    python experiments/speed.py                  # d = 3072, batch 1024, float32, CPU

Problem: Gaussian data with a full (randomly rotated) covariance, whose exact denoiser costs two
d×d matrix products per call, the role a network plays in practice. Targets (issue 7):
deterministic samplers ≤ 1.2× the floor; stochastic samplers ≤ 2× the floor plus the time of
drawing their noise (measured separately and reported).

Throughput columns: samples/s = batch / wall, and a bandwidth figure that is a lower bound on
what the run moved: every model evaluation reads and writes at least one state (2 × batch × d
× itemsize bytes per NFE), divided by the wall time, as a fraction of the device's measured copy
bandwidth (a large tensor copy, read + write, the attainable peak) or of ``--peak-gbps`` when
given (the datasheet peak, e.g. 3350 GB/s for an H100 SXM). On an accelerator the NaN/Inf
check runs at the end (``--check-finite auto``), so the loop has no per-step host sync
(:func:`sdebench.solvers.loop.sample`); ``--check-finite step`` measures what that sync costs.
Each timing is the median of ``--repeat`` rounds after a warm-up round, printed with the fastest and slowest
(a repeat run's median falls in that range with the probability :func:`repeat_coverage` prints
in the header, 97% at the default 9 rounds, if nothing changed between the runs); the
``spread`` column (slowest/fastest, also for the floor) flags a busy machine. Rounds interleave:
each round times the floor and every sampler once, in turn (:func:`interleaved_timings`), so a
change of the machine's load during the run falls on all of them alike instead of on whichever
sampler was being timed, and each ratio to the floor is taken within its round. ``--check``
makes a sampler over its target an exit status of 1.

CPU hygiene: glibc serves large allocations with fresh mmap'd pages and returns them on free, so
every new 12 MB temporary page-faults; memory-bound timings then swing 2–4× between runs (the
floor of the diagonal problem measured 2.6 ms in one run and 10.9 ms in the next).
:func:`tune_glibc_malloc` keeps such blocks on the heap for the whole process (both libraries of
experiments/peers.py run under it); the header line says whether it applied.
"""

from __future__ import annotations

import argparse
import sys
import time


def tune_glibc_malloc() -> str:
    """mallopt(M_MMAP_THRESHOLD = 32 MiB, the maximum; M_TRIM_THRESHOLD = 1 GiB) on glibc:
    large temporaries are reused from the heap instead of being mapped and faulted in each time.
    Returns a description for the report ('' if not glibc)."""
    import ctypes
    import ctypes.util

    if sys.platform != "linux":
        return ""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return ""
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    if mallopt(m_mmap_threshold, 32 * 2**20) and mallopt(m_trim_threshold, 2**30):
        return "glibc malloc: mmap threshold 32 MiB, trim threshold 1 GiB"
    return ""


def timings(fn, device: str, repeat: int = 3) -> list[float]:
    """Wall times of ``repeat`` calls after one untimed warm-up call (lazy compilation, caches,
    first-touch page faults), synchronising CUDA around each."""
    import torch

    fn()
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def interleaved_timings(calls: dict, device: str, repeat: int = 3) -> dict[str, list[float]]:
    """name → wall times of ``calls[name]()`` in ``repeat`` rounds, each round calling every
    function once in turn, after one untimed warm-up round (CUDA synchronised around each)."""
    import torch

    synchronize = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    times = {name: [] for name in calls}
    for round_index in range(repeat + 1):
        for name, fn in calls.items():
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()
            if round_index:  # round 0 warms up
                times[name].append(time.perf_counter() - start)
    return times


def median(times: list[float]) -> float:
    ordered = sorted(times)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def repeat_coverage(n: int) -> float:
    """Probability that the median of a repeat run of ``n`` timings lies within this run's
    [fastest, slowest], when all 2n timings are exchangeable (nothing changed between the runs).

    The repeat's median exceeds this run's slowest only if its ceil(n/2) largest timings all
    exceed every one of this run's, i.e. the k = ceil(n/2) largest of the 2n pooled timings all
    belong to the repeat: probability C(2n−k, n−k)/C(2n, n) by symmetry of ranks; the same below
    the fastest. For odd n this is exact, for even n (median = mean of the middle two) a bound:
    coverage ≥ 1 − 2·C(2n−k, n−k)/C(2n, n). Examples: n = 5 gives 83%, n = 9 97%, n = 15 99.8%.
    A two-way comparison (each run's median in the other's range) of identical runs fails for
    2/7 ≈ 29% of samplers at n = 5 and 5.6% at n = 9 (by enumerating the rank splits).
    """
    from math import ceil, comb

    k = ceil(n / 2)
    return 1 - 2 * comb(2 * n - k, n - k) / comb(2 * n, n)


def spread(times: list[float]) -> float:
    """Slowest over fastest of repeated timings: 1 on a quiet machine; above
    :data:`NOISY_SPREAD` the machine was busy and ratios are not to be trusted."""
    return max(times) / min(times)


NOISY_SPREAD = 1.5
FLOOR_DRIFT = 1.2
"""If the floor of the last round differs from the first round's by more than this factor the
machine's load changed during the run (ratios are taken per round, but timings are not)."""
FLOOR_CALLS = 8
"""A floor timing is this many back-to-back model evaluations, per call."""


def floor_times(call, device: str, repeat: int = 3, calls: int = FLOOR_CALLS) -> list[float]:
    """One model evaluation: ``repeat`` timings of ``calls`` back-to-back calls, per call."""
    return [t / calls for t in timings(lambda: [call() for _ in range(calls)], device, repeat)]


def copy_bandwidth(device: str, dtype, megabytes: int = 512, repeat: int = 3) -> float:
    """Attainable memory bandwidth in bytes/s: best time of copying a large buffer (read + write)."""
    import torch

    count = megabytes * 2**20 // torch.empty((), dtype=dtype).element_size()
    source = torch.ones(count, dtype=dtype, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    return 2 * source.numel() * source.element_size() / min(
        timings(lambda: target.copy_(source), device, repeat))


class CountingNoise:
    """Counts the noise draws a sampler makes (for the stochastic samplers' allowance)."""

    def __init__(self, inner):
        self.inner, self.draws = inner, 0

    def increment(self, t_a, t_b, like, channel=0):
        self.draws += 1
        return self.inner.increment(t_a, t_b, like, channel)

    def normal(self, t_a, t_b, like, channel=0):
        self.draws += 1
        return self.inner.normal(t_a, t_b, like, channel)


COVARIANCES = ("full", "diagonal")


def speed_problem(dim: int, dtype: str, device: str, covariance: str = "full"):
    """Problem ``gaussian_rotated`` of the catalogue (seed 0) on VP: Gaussian data whose exact
    denoiser is two d×d products (``full``, a network's role) or elementwise (``diagonal``)."""
    import torch

    from sdebench.problems.catalogue import get_problem
    from sdebench.theory import get_schedule

    problem = get_problem(f"gaussian_rotated:covariance={covariance!r}", get_schedule("vp"),
                          dim=dim, seed=0)
    return problem.to(dtype=getattr(torch, dtype), device=device)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """The problem size, precision, device and timing options shared with experiments/peers.py."""
    parser.add_argument("--dim", type=_positive_int, default=3072, help="data dimension (default 3072)")
    parser.add_argument("--batch", type=_positive_int, default=1024, help="samples per run (default 1024)")
    parser.add_argument("--steps", type=_positive_int, default=4, help="sampler steps (default 4)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="precision (default float32)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--repeat", type=_positive_int, default=9,
                        help="timed rounds after one warm-up round: the median is reported with "
                             "its spread (speed.py: the fastest and slowest, a range that holds a "
                             "repeat run's median with probability 97%% at 9) (default 9)")
    parser.add_argument("--covariance", default="full", choices=COVARIANCES,
                        help="full: the denoiser is two d×d products (a network's role); "
                             "diagonal: cheap, so a sampler's own overhead shows (default full)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """One usage line where ``--device`` cannot run here (:func:`sdebench.devices.device_problem`:
    not a device name, not cpu or cuda[:N], no such CUDA device)."""
    from sdebench.devices import device_problem

    problem = device_problem(device)
    if problem:
        parser.error(problem)


def check_csv_path(parser: argparse.ArgumentParser, path: str) -> None:
    """One usage line, before anything is timed, where ``--csv`` cannot be written: a
    directory, or a folder that is a file or not writable (its nearest existing ancestor,
    since the write creates the missing ones)."""
    import os
    from pathlib import Path

    target = Path(path)
    if not path or target.is_dir():
        parser.error(f"--csv {path!r} is {'empty' if not path else 'a directory'}: give a file "
                     "path, e.g. speed.csv")
    folder = target.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        parser.error(f"--csv {path!r}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"--csv {path!r}: the folder {folder} is not writable (no permission): "
                     "write elsewhere")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from sdebench.solvers.catalogue import BUILTIN_SAMPLERS
    from sdebench.solvers.context import FINITE_CHECKS

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_size_arguments(parser)
    parser.add_argument("--check-finite", default="auto", choices=FINITE_CHECKS,
                        help="NaN/Inf checks: per step (a host sync each), once at the end "
                             "(no sync in the loop), off, or auto: per step on the CPU, at the "
                             "end on an accelerator (default auto)")
    parser.add_argument("--peak-gbps", type=_positive_float, default=None,
                        help="datasheet memory bandwidth (GB/s); default: the measured copy peak")
    parser.add_argument("--copy-mb", type=_positive_int, default=512,
                        help="buffer size of the copy-bandwidth measurement in MiB (default 512)")
    parser.add_argument("--samplers", default=",".join(n for n in BUILTIN_SAMPLERS if n != "rk45"),
                        help="comma-separated sampler specs (default: sdebench's own but the "
                             "adaptive rk45; the peer libraries: experiments/peers.py)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a sampler is over its target")
    parser.add_argument("--csv", metavar="PATH", default=None,
                        help="also write the table, each row with the options, versions and "
                             "commit that made it, to this CSV file (to compare two runs)")
    return parser


def write_csv(table, args: argparse.Namespace, path: str) -> None:
    """The table with the run's configuration and provenance in every row (tidy: one file per
    run; :func:`~sdebench.studies.provenance.row_provenance`: the library versions and git
    commit), written atomically (:func:`~sdebench.studies.store.atomic_write_text`: a failed
    write is a StoreError and leaves no partial file)."""
    from sdebench import __version__
    from sdebench.studies.provenance import row_provenance
    from sdebench.studies.store import atomic_write_text

    options = {k: v for k, v in vars(args).items() if k not in {"csv", "quiet", "check"}}
    atomic_write_text(path, table.assign(
        **options, repeat_coverage=repeat_coverage(args.repeat), sdebench_version=__version__,
        **row_provenance()).to_csv(index=False))


def speed_table(args: argparse.Namespace):
    """(tidy DataFrame, one header line) for the parsed options of :func:`build_parser`."""
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from sdebench.registry import split_specs
    from sdebench.solvers.catalogue import get_solver
    from sdebench.solvers.grids import log_snr_grid
    from sdebench.solvers.loop import sample
    from sdebench.solvers.noise import GaussianIncrements

    dtype = getattr(torch, args.dtype)
    problem = speed_problem(args.dim, args.dtype, args.device, args.covariance)
    schedule = problem.schedule
    ts = log_snr_grid(schedule, args.steps, device=args.device)
    x = problem.sample_marginal(ts[0].to(dtype), args.batch)
    t_mid = ts[args.steps // 2]
    measured_peak = copy_bandwidth(args.device, dtype, args.copy_mb, args.repeat)
    peak = measured_peak if args.peak_gbps is None else args.peak_gbps * 1e9
    state_bytes = x.numel() * x.element_size()
    noise_draw = median(timings(lambda: GaussianIncrements(0).increment(ts[0], ts[1], x),
                                args.device, args.repeat))
    names = split_specs(args.samplers)
    solvers = {name: get_solver(name) for name in names}
    noises = {name: CountingNoise(GaussianIncrements(1)) for name in names}
    nfe = {}

    def runner(name):
        def run():
            noises[name].draws = 0
            nfe[name] = sample(solvers[name], problem.denoiser, schedule, x, ts,
                               noise=noises[name], check_finite=args.check_finite).nfe
        return run

    calls = {FLOOR: lambda: [problem.denoiser(x, t_mid) for _ in range(FLOOR_CALLS)],
             **{name: runner(name) for name in names}}
    bar = tqdm(total=args.repeat + 1, desc="rounds", disable=args.quiet)
    times = interleaved_timings(_counting(calls, bar), args.device, args.repeat)
    bar.close()
    floor_rounds = [t / FLOOR_CALLS for t in times[FLOOR]]
    floor = median(floor_rounds)
    rows = []
    for name in names:
        solver, walls = solvers[name], times[name]
        ratios = [wall / (nfe[name] * f) for wall, f in zip(walls, floor_rounds, strict=True)]
        wall, ratio = median(walls), median(ratios)
        allowed = (2 + noises[name].draws * noise_draw / (nfe[name] * floor)) \
            if solver.stochastic else 1.2
        min_traffic = 2 * state_bytes * nfe[name] / wall
        rows.append({"sampler": name, "stochastic": solver.stochastic, "nfe": nfe[name],
                     "noise_draws": noises[name].draws, "wall_s": wall, "wall_min": min(walls),
                     "wall_max": max(walls), "spread": spread(walls),
                     "floor_ratio": ratio, "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "allowed_ratio": allowed, "within_target": ratio <= allowed,
                     "samples_per_s": args.batch / wall,
                     "min_traffic_GBps": min_traffic / 1e9, "fraction_of_peak": min_traffic / peak})
    header = (f"denoiser (floor) {floor * 1e3:.1f} ms (spread {spread(floor_rounds):.2f}); "
              f"one noise draw {noise_draw * 1e3:.1f} ms; "
              f"d={args.dim} batch={args.batch} {args.dtype} {args.device} steps={args.steps} "
              f"{args.covariance} covariance; copy bandwidth {measured_peak / 1e9:.1f} GB/s"
              + ("" if args.peak_gbps is None else f", datasheet peak {args.peak_gbps:g} GB/s")
              + f"; {args.repeat} interleaved rounds: a repeat run's median falls within "
              f"[ratio_min, ratio_max] with probability {'≥ ' * (args.repeat % 2 == 0)}"
              f"{repeat_coverage(args.repeat):.1%} if nothing changed (speed.repeat_coverage)")
    table = pd.DataFrame(rows)
    table.attrs["floor_spread"] = spread(floor_rounds)
    table.attrs["floor_drift"] = max(floor_rounds[0], floor_rounds[-1]) / min(
        floor_rounds[0], floor_rounds[-1])
    return table, header


FLOOR = "(floor)"


def _counting(calls: dict, bar) -> dict:
    """The same calls, advancing ``bar`` once per round (after the last call of a round)."""
    last = list(calls)[-1]

    def tick(fn):
        def call():
            fn()
            bar.update()
        return call

    return {name: tick(fn) if name == last else fn for name, fn in calls.items()}


def print_table(make_table, args: argparse.Namespace) -> object:
    """Tune malloc, build ``make_table(args) -> (DataFrame, header)``, print both (with a warning
    when the timings were noisy) and return the table."""
    malloc = tune_glibc_malloc()
    table, header = make_table(args)
    print(header + (f"; {malloc}" if malloc else ""))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    noisy = list(table[table["spread"] > NOISY_SPREAD].sampler) if "spread" in table else []
    if table.attrs.get("floor_spread", 1.0) > NOISY_SPREAD:
        noisy.append("the floor")
    drift = table.attrs.get("floor_drift", 1.0)
    if drift > FLOOR_DRIFT:
        print(f"warning: the floor moved by {drift:.2f}x between the start and the end of the run: "
              "the machine's load changed, so the ratios are not reliable; re-run on a quiet "
              "machine", file=sys.stderr)
    if noisy:
        print(f"warning: timings of {', '.join(noisy)} varied by more than {NOISY_SPREAD}x between "
              "repetitions (slowest/fastest): the machine was busy, so these ratios are not "
              "reliable; re-run on a quiet machine", file=sys.stderr)
    return table


def main(argv=None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    check_device(parser, args.device)
    if args.csv is not None:
        check_csv_path(parser, args.csv)
    from sdebench.registry import SpecError, split_specs
    from sdebench.solvers.catalogue import get_solver
    from sdebench.studies.store import StoreError

    try:
        for name in split_specs(args.samplers):
            get_solver(name)
    except (SpecError, ValueError, TypeError) as error:
        parser.error(str(error))
    table = print_table(speed_table, args)
    if args.csv:
        try:
            write_csv(table, args, args.csv)
        except StoreError as error:  # e.g. the disk filled during the run
            print(f"{parser.prog}: error: {error}", file=sys.stderr)
            return 2
    over = table[~table.within_target]
    if args.check and not over.empty:
        print(f"over target: {', '.join(over.sampler)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
