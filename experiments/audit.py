"""The field audit: every peer sampler sdebench runs, in the configurations people use, judged
on exact answers (sdebench.peers.audit): one HTML page and a one-screen console summary.

    pip install "sdebench[peers]" && pip install --no-deps k-diffusion
    python experiments/audit.py                # results/audit/: audit.html, audit.csv

Each convergence stage is a study stored in the same folder, so an interrupted audit resumes
where it stopped and a finished one re-renders at once; the inversion round trips and the
adaptive sampler's tolerances (seconds) are recomputed. Exit status 1 where a verdict is FAIL
(each has its evidence in the page), 0 otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

DEFAULT_STEPS = (8, 16, 32, 64, 128, 256)
SUMMARY_WIDTH = 118


def main(argv=None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/audit", help="folder of the audit's studies, "
                        "audit.html and audit.csv (default: results/audit)")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)),
                        help="comma-separated step counts (default: 8,…,256)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        steps = sorted({int(n) for n in args.steps.split(",")})
    except ValueError:
        parser.error(f"--steps: comma-separated integers, got {args.steps!r}")
    from sdebench.peers.catalogue import missing_libraries

    missing = missing_libraries()
    if missing:
        print(f"the audit {missing}", file=sys.stderr)
        return 2
    command = shlex.join(["python", "experiments/audit.py", *(argv if argv is not None
                                                              else sys.argv[1:])])
    table, results = run_audit(steps, Path(args.out), progress=not args.quiet, command=command)
    from sdebench.reports.html import render_audit
    from sdebench.studies.store import atomic_write_text

    page = Path(args.out) / "audit.html"
    atomic_write_text(Path(args.out) / "audit.csv", table.to_csv(index=False))
    atomic_write_text(page, render_audit(table, results, command))
    print_summary(table)
    print(f"audit: {page} (and audit.csv)")
    return 1 if (table.verdict == "FAIL").any() else 0


def run_audit(steps, out: Path, progress: bool, command: str):
    """Run (or resume) every stage into the store at ``out``; the audit table and the rows."""
    from sdebench.peers.audit import (
        ADAPTIVE_STAGE,
        INVERSION_STAGE,
        adaptive_results,
        audit_table,
        inversion_results,
        stages,
    )
    from sdebench.solvers.catalogue import get_solver, sampler_groups
    from sdebench.solvers.loop import schedule_refusal
    from sdebench.studies import StudyConfig, run_study
    from sdebench.studies.order import order_table
    from sdebench.studies.store import ResultStore
    from sdebench.theory import get_schedule

    store = ResultStore(str(out))
    refused, not_judged, frames = {}, {}, []
    for stage in stages(sampler_groups()["peers"]):
        schedule = get_schedule(stage.schedule)
        solvers = {name: get_solver(name) for name in stage.samplers}
        reasons = {name: schedule_refusal(solver, schedule) for name, solver in solvers.items()}
        for name, reason in reasons.items():
            if reason:  # not judged anywhere (the solver's own refusal), or not on this schedule
                judged = not getattr(solvers[name], "refusal", "")
                (refused if judged else not_judged)[(stage.name, name)] = reason
        config = StudyConfig(schedules=[stage.schedule], steps=steps, grid="auto",
                             samplers=[name for name in stage.samplers if not reasons[name]],
                             metrics=["w2", "agreement"])
        if progress:
            print(f"stage: {stage.name} ({stage.schedule}, {len(config.samplers)} samplers)",
                  file=sys.stderr)
        study = run_study(config, store, progress=progress, command=command, trajectories=False)
        frames.append(study.results.assign(stage=stage.name))
    for name, rows in ((INVERSION_STAGE, inversion_results(steps)),
                       (ADAPTIVE_STAGE, adaptive_results())):
        if progress:
            print(f"stage: {name} (edm, {rows.sampler.nunique()} samplers)", file=sys.stderr)
        frames.append(rows.assign(stage=name))
    import pandas as pd

    results = pd.concat(frames, ignore_index=True)
    # two stages may share a schedule, hence a section (config_id): a row's stage is its sampler's
    stage_of = results.groupby(["config_id", "sampler"]).stage.first().to_dict()
    return audit_table(results, order_table(results), stage_of, refused, not_judged), results


def print_summary(table) -> None:
    """Counts per verdict, then one line per FAIL and per finding (≤ 118 columns)."""
    counts = table.verdict.value_counts()
    print("audit: " + ", ".join(f"{verdict} {counts[verdict]}" for verdict in counts.index))
    for _, row in table[table.verdict == "FAIL"].iterrows():
        # the evidence first: a long spec or schedule is what the width cuts
        line = (f"FAIL {row.measured_order:.2f} ± {row.ci95:.2f} (declared "
                f"{row.declared_order:g}): {row.sampler} on {row.schedule}")
        print(line[:SUMMARY_WIDTH])
    for finding, rows in table[table.finding.fillna("") != ""].groupby("finding", sort=False):
        print(f"finding experiments/findings/{finding}:")
        for sampler in rows.sampler:
            print(f"  {sampler}"[:SUMMARY_WIDTH])


if __name__ == "__main__":
    raise SystemExit(main())
