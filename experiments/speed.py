"""Speed relative to the floor: wall time / (NFE × one denoiser evaluation).

    python experiments/speed.py                  # d = 3072, batch 1024, float32, CPU
    python experiments/speed.py --covariance diagonal --threads 1   # cheap model: the traffic bound

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

The limit beside every ratio (issue 28), per step: ``step_MB``, the bytes of state-sized
tensors the sampler's own operations read and write outside the model (the state, the model's
output, history buffers, noise draws, the NaN/Inf checks), counted by one instrumented run
(:mod:`sdebench.studies.traffic`), also as ``passes`` over the state and ``kernels`` (operations,
scalar ones included: the per-step overhead); ``traffic_ms``, those bytes at the bandwidth of a
copy of the state's size, timed in every round; ``bound_ms`` = (NFE × floor + draws × one normal
draw + the other bytes / that bandwidth) / steps, the least a step can take with this model, this
noise generator and this arithmetic (a sum: the model and the update wait on each other); and
``bound_ratio`` = wall / bound (target ≤ 1.5 with a cheap model, ``--covariance diagonal``;
≤ 1.1 with the full covariance, where the bound is the floor to within the noise and the traffic;
``within_target`` needs it and the floor ratio's target).
The timing harness is library code (:mod:`sdebench.studies.timing`, shared with experiments/peers.py
and the asv benchmarks): medians of ``--repeat`` interleaved rounds after a warm-up round, with
the fastest and slowest (a repeat run's median falls in that range with the probability
``repeat_coverage`` prints in the header, 97% at the default 9 rounds, if nothing changed); the
``spread`` column (slowest/fastest, also for the floor) flags a busy machine; glibc's malloc is
tuned for stable CPU timings (both libraries of experiments/peers.py run under it; the header
says whether it applied). ``--check`` makes a sampler over its target an exit status of 1.
"""

from __future__ import annotations

import argparse
import sys

from sdebench.studies.timing import (
    COVARIANCES,
    FLOOR_DRIFT,
    NOISY_SPREAD,
    floor_ratio_table,
    repeat_coverage,
    tune_glibc_malloc,
)


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
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch's intra-op threads for the run (default: as torch sets them); "
                             "1 keeps another job on a second core out of the run's hand-offs")
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
    """(tidy DataFrame, one header line) for the parsed options of :func:`build_parser`
    (:func:`sdebench.studies.timing.floor_ratio_table`)."""
    from sdebench.registry import split_specs

    return floor_ratio_table(split_specs(args.samplers), dim=args.dim, batch=args.batch,
                             steps=args.steps, dtype=args.dtype, device=args.device,
                             repeat=args.repeat, covariance=args.covariance,
                             check_finite=args.check_finite, copy_mb=args.copy_mb,
                             peak_gbps=args.peak_gbps, progress=not args.quiet,
                             threads=args.threads)


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
