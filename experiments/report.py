"""Render the report of a saved study:  sdebench report results/convergence/<study>

Reads the study directory's stored units (nothing is re-run), fits the orders from the stored
rows and writes one section per configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def render_directory(directory: str | Path, output: str | Path | None = None,
                     progress: bool = False, analysis=None, budgets=None) -> Path:
    """Write the report of the study stored in ``directory`` (default: its report.html).
    ``analysis``: the :class:`~sdebench.studies.analysis.Analysis` of the study just run, used
    when it covers exactly the stored units (else they are analysed here, once); ``budgets``:
    the NFE budgets of the answer tables (default: those of ``analysis``, or
    :data:`~sdebench.studies.precision.NFE_TARGETS`)."""
    from sdebench.reports.html import StudyFrames, write_report
    from sdebench.studies.analysis import analyse, check_budgets
    from sdebench.studies.precision import NFE_TARGETS
    from sdebench.studies.store import ResultStore, StoreError

    store = ResultStore(directory)
    results, samples = store.frames()
    if results.empty:
        legacy = " (it holds a results.csv of the pre-0.2 format: re-run the study)" \
            if (Path(directory) / "results.csv").exists() else ""
        raise StoreError(f"no stored results in {directory}{legacy}")
    budgets = check_budgets(budgets or (analysis.budgets if analysis is not None else NFE_TARGETS))
    if analysis is None or analysis.units != frozenset(results.unit_id) \
            or analysis.budgets != budgets:
        analysis = analyse(results, budgets)
    frames = StudyFrames(results, analysis, samples, store.section_frames("trajectories"),
                         store.sections(), store.section_frames("score_error"), str(directory))
    return write_report(frames, Path(directory) / "report.html" if output is None else output,
                        progress)


def nfe_budgets(text: str) -> tuple[int, ...]:
    """``--budgets``: comma-separated positive integers, as a sorted tuple."""
    from sdebench.studies.analysis import check_budgets

    try:
        return check_budgets(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers (NFE), e.g. 10,20,50, got {text!r}"
        ) from None


def _check_output(parser, directory: Path, output: str | None) -> Path | None:
    if output is None:
        return None
    path = Path(output)
    if path.suffix.lower() not in (".html", ".htm"):
        parser.error(f"--output must be an .html file, got {output!r}")
    if path.is_dir():
        parser.error(f"--output {output!r} is a directory")
    inside = path.resolve().parent
    if inside in (directory.resolve() / "units", directory.resolve() / "trajectories"):
        parser.error(f"--output {output!r} would write into the study's own data")
    return path


def main(argv=None, prog: str | None = None) -> int:
    from sdebench.studies.store import StoreError

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the study's --out directory")
    parser.add_argument("--output", help="report path, an .html file (default: report.html in "
                                         "the study directory)")
    parser.add_argument("--budgets", type=nfe_budgets, default=None, metavar="NFES",
                        help="comma-separated NFE budgets of the answer tables (default: "
                             "10,20,50,100)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    if not directory.is_dir():
        parser.error(f"{args.directory!r} is not a study directory")
    output = _check_output(parser, directory, args.output)
    try:
        path = render_directory(directory, output, progress=not args.quiet, budgets=args.budgets)
        print(f"report: {path}")
    except StoreError as error:
        parser.error(str(error))
    except KeyboardInterrupt:  # the report is written atomically: no half-written page is left
        print(f"{parser.prog}: interrupted: no report was written and the study in {directory} is "
              "unchanged; run the command again", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
