"""Convergence study CLI: measured solver orders (with 95 % CIs) against declared orders.

    python experiments/convergence.py --sde vp        # the same as: sdebench convergence --sde vp

Thin wrapper: argument parsing, then sdebench.studies (run, fit) and sdebench.reports (render).
Exit status: 0 when no verdict is FAIL and no unit failed, 1 otherwise, 2 for bad arguments, a
dask cluster that cannot be used or a report that cannot be written (one line naming the bad
input), 130 when interrupted (Ctrl-C; one line saying what was kept).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import shlex
import sys
import textwrap
import warnings


def _pre_parse_plugins(argv) -> list[str]:
    """Import ``--plugin`` modules before the real parser is built, so their names are known."""
    from sdebench.registry import import_module

    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--plugin", action="append", default=[])
    plugins = early.parse_known_args(argv)[0].plugin
    for name in plugins:
        import_module(name)
    return plugins


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from sdebench.experiments.report import nfe_budgets
    from sdebench.solvers.catalogue import sampler_groups
    from sdebench.studies.config import MAX_STEPS, known_names

    names = known_names()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run samplers over step counts on a problem with exact answers, fit the "
                    "convergence order (log-log least squares, 95% CI) and compare it with each "
                    "sampler's declared order. Each finished unit is saved at once; re-running "
                    "the same command resumes. A spec is a name with optional parameters "
                    "(vp:beta_max=10, ddim:eta=0.3) or module:attribute of user code.",
    )
    parser.add_argument("--schedule", "--sde", dest="schedules", default="vp", metavar="SPECS",
                        help="comma-separated schedule specs, or 'all' (known: "
                             f"{', '.join(names['schedules'])}; default: vp)")
    groups = sampler_groups()
    parser.add_argument("--samplers", default="all", metavar="SPECS",
                        help="comma-separated sampler specs; 'all' (default) names sdebench's "
                             f"own and your plugins' ({', '.join(groups['all'])}), 'peers' the "
                             f"peer libraries' ({', '.join(groups['peers']) or 'none registered'}; "
                             "they need the peers extra)")
    parser.add_argument("--steps", default=None,
                        help=f"comma-separated step counts in [1, {MAX_STEPS}]; orders are fitted "
                             "on the 3 largest above the error floor, the error-at-NFE table reads "
                             "all (default: 4,8,16,32 for spectrum and lowrank; 4,...,4096 when "
                             "every schedule starts at pure noise (rf, vp0snr); else "
                             "4,8,16,32,64,128,256)")
    parser.add_argument("--problem", default=None, metavar="SPEC",
                        help=f"problem spec (known: {', '.join(names['problems'])}); gaussian has "
                             "the exact output law (W2, KL, no Monte Carlo noise), gmm Monte Carlo "
                             "metrics (default: gaussian). With --model: the network's learned "
                             "score on this problem's truth, beside the exact score")
    parser.add_argument("--model", default=None, metavar="MODULE:FACTORY|CKPT.pt",
                        help="study your own network (or a checkpoint of experiments/train.py, "
                             "path ending in .pt): FACTORY() returns a "
                             "network model(x, t) (see --prediction) or an adapter of "
                             "sdebench.problems.adapters (diffusers, k-diffusion); errors are "
                             "measured against a reference solve (--reference)")
    parser.add_argument("--prediction", default=None, choices=["eps", "x0", "v", "score", "v_flow"],
                        help="what a plain --model network predicts (default: eps; v_flow: a flow "
                             "network's velocity eps - x0, as diffusers' flow_prediction)")
    parser.add_argument("--shape", default=None, metavar="DIMS",
                        help="one sample's shape for --model, e.g. 3,32,32 (default: the "
                             "adapter's or the network's sample_shape)")
    parser.add_argument("--reference", default="rk4", metavar="SOLVER[@STEPS]",
                        help="reference solve of reference-based metrics (ref_error): a "
                             "deterministic sampler and an even step count; its own change from "
                             "half the steps is the error floor (default: rk4 at 8x the largest "
                             "--steps, a power of two >= 64)")
    parser.add_argument("--compile", action="store_true",
                        help="run the --model network through torch.compile")
    parser.add_argument("--dim", type=int, default=None,
                        help="data dimension (default: the problem's own, 3·res² for spectrum "
                             "and lowrank; else 4)")
    parser.add_argument("--batch", type=int, default=None,
                        help="samples per run: timing, strong errors, Monte Carlo metrics "
                             "(default: 2 for spectrum and lowrank, else 256)")
    parser.add_argument("--grid", default=None, metavar="SPEC",
                        help=f"time grid spec (known: {', '.join(names['grids'])}; default: logsnr; "
                             "auto — graded (uniform in λ towards the data, in e^(λ/2) towards the "
                             "noise) where a schedule starts at pure noise, rf and vp0snr, logsnr "
                             "elsewhere — when a schedule does)")
    parser.add_argument("--metrics", default=None, metavar="NAMES",
                        help=f"comma-separated metrics (known: {', '.join(names['metrics'])}); "
                             "default: every metric the problem answers, Monte Carlo ones only "
                             "without an exact law")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                        help="precision of problem, grid and samples (default: float64)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda[:N], or auto: a GPU where one is available and the state "
                             "(batch × d) has at least 65536 elements, else the CPU, saying why "
                             "(sdebench.devices.auto_device; default: cpu)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed (>= 0) of data, start points and noise (default: 0)")
    parser.add_argument("--timing-repeats", type=int, default=1,
                        help="timed repetitions of each batch run (median and min–max drawn in "
                             "the work–precision diagram; default: 1, after a warm-up run)")
    parser.add_argument("--workers", type=int, default=0,
                        help="run units on an embedded dask LocalCluster of this many worker "
                             "processes (needs sdebench[distributed]; default: in this process)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run units on an existing dask cluster (e.g. tcp://host:8786)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module (or .py file) that registers samplers, schedules, "
                             "problems or metrics; repeatable")
    parser.add_argument("--out", default=None,
                        help="output directory (default: results/convergence/<derived from the "
                             "configuration>); re-running with the same --out resumes")
    parser.add_argument("--budgets", type=nfe_budgets, default=None, metavar="NFES",
                        help="comma-separated NFE budgets at which the console and the report "
                             "state each sampler's error (default: 10,20,50,100); they change "
                             "what is shown, not what is run")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true",
                        help="print every fit (steps, points, notes) and the full verdict legend")
    parser.add_argument("--list", action="store_true",
                        help="list the registered schedules, samplers, problems, grids, metrics")
    return parser


def _specs(text: str, known: list[str] | dict[str, list[str]], what: str, parser) -> list[str]:
    """The specs of a comma-separated list, each group name (``all``; for samplers also
    ``peers``) replaced by its members."""
    from sdebench.registry import split_specs

    groups = known if isinstance(known, dict) else {"all": list(known)}
    specs = [member for spec in split_specs(text) for member in groups.get(spec, [spec])]
    if not specs:
        parser.error(f"--{what}: expected at least one name, got {text!r}")
    duplicates = sorted({spec for spec in specs if specs.count(spec) > 1})
    if duplicates:
        print(f"note: --{what} names {', '.join(duplicates)} more than once; each runs once",
              file=sys.stderr)
    return specs


def parse_args(argv=None, prog: str | None = None):
    """Parse and validate everything before anything is written; returns (args, config, store)."""
    from sdebench.devices import AUTO, device_problem
    from sdebench.registry import SpecError, did_you_mean
    from sdebench.solvers.catalogue import sampler_groups
    from sdebench.studies.config import (
        StudyConfig,
        default_grid,
        known_names,
        resolve_sections,
        resolve_units,
    )
    from sdebench.studies.store import ResultStore, StoreError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _pre_parse_plugins(argv)
    except SpecError as error:
        argparse.ArgumentParser(prog=prog).error(str(error))
    parser = build_parser(prog)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [flag for action in parser._actions for flag in action.option_strings]
        option = unknown[0].split("=")[0]
        hint = did_you_mean(option, flags) if option.startswith("-") else ""
        parser.error(f"unrecognized argument {unknown[0]!r}{hint} (see --help)")
    names = known_names()
    if args.list:
        return args, None, None
    try:
        steps = None if args.steps is None else [  # None: the problem's own (StudyConfig)
            int(value) for value in args.steps.split(",") if value.strip()]
    except ValueError:
        parser.error(f"--steps must be comma-separated integers, got {args.steps!r}")
    if steps == []:
        parser.error(f"--steps: expected at least one step count, got {args.steps!r}")
    if args.workers < 0 or (args.workers and args.scheduler):
        parser.error("--workers takes a count >= 1, and not together with --scheduler")
    if (args.workers or args.scheduler) and importlib.util.find_spec("distributed") is None:
        parser.error("--workers/--scheduler need dask.distributed: "
                     "pip install 'sdebench[distributed]'")
    try:
        shape = None if args.shape is None else tuple(
            int(value) for value in args.shape.split(",") if value.strip())
    except ValueError:
        parser.error(f"--shape must be comma-separated integers, got {args.shape!r}")
    problem = None if args.device == AUTO and not args.scheduler else \
        device_problem(args.device, remote=bool(args.scheduler))
    if problem:
        parser.error(problem)
    try:
        schedules = _specs(args.schedules, names["schedules"], "schedule", parser)
        config = StudyConfig(
            schedules=schedules,
            samplers=_specs(args.samplers, sampler_groups(), "samplers", parser),
            steps=steps, problem=args.problem, dim=args.dim, batch=args.batch,
            grid=args.grid or default_grid(schedules),
            dtype=args.dtype, device="cpu" if args.device == AUTO else args.device,
            seed=args.seed, timing_repeats=args.timing_repeats, metrics=None if args.metrics is None else
            _specs(args.metrics, names["metrics"], "metrics", parser),
            reference=args.reference, model=args.model, prediction=args.prediction,
            shape=shape, compile=args.compile)
        args.sections = resolve_sections(config)  # resolved once: run_study takes them
        if args.device == AUTO:
            config, args.sections = _choose_device(config, args.sections)
        args.refused_samplers = _print_refusals(config, args.sections)
        if not resolve_units(config, args.sections):
            parser.error("every requested sampler is refused on these schedules (notes above)"
                         if args.refused_samplers >= set(config.samplers) else
                         f"no requested metric applies to problem {config.problem!r} with "
                         "these samplers (e.g. strong_error needs a declared strong order)")
    except (ValueError, TypeError, SpecError, ImportError, AttributeError, RuntimeError,
            ArithmeticError) as error:  # RuntimeError: torch's (a device, a dtype)
        parser.error(str(error))
    out = config.default_out() if args.out is None else args.out
    try:
        store = ResultStore(out)
        with store:
            pass  # writable and not busy: checked before the first unit runs
    except StoreError as error:
        parser.error(str(error))
    return args, config, store


def _choose_device(config, sections):
    """``--device auto``: the config and its sections on the device :func:`auto_device` picks for
    the largest state (batch × the problem's d) the sections hold, said on stderr; sections
    resolved on the CPU are resolved again only where it picks a GPU."""
    from sdebench.devices import auto_device
    from sdebench.studies.config import resolve_sections

    elements = max(config.batch * section.problem.dim for section in sections)
    device, why = auto_device(elements)
    print(why, file=sys.stderr)
    if device == "cpu":
        return config, sections
    config = dataclasses.replace(config, device=device)
    return config, resolve_sections(config)


def _print_refusals(config, sections) -> set[str]:
    """Name the samplers a schedule rules out (its pure-noise start, or a schedule the sampler
    refuses), once per schedule, with the reason; return them."""
    from sdebench.solvers.catalogue import get_solver
    from sdebench.solvers.loop import infinite_sigma_refusal
    from sdebench.studies.config import refused_samplers

    names = set()
    for spec in dict.fromkeys(section.schedule_spec for section in sections):
        section = next(section for section in sections if section.schedule_spec == spec)
        schedule = section.problem.schedule
        refused = refused_samplers(config, section)
        infinite = [name for name in refused if infinite_sigma_refusal(get_solver(name), schedule)]
        if infinite:
            print(f"note: {spec} starts at pure noise (s = 0, sigma = infinity at t = "
                  f"{float(schedule.t_max):g}); not run there: "
                  f"{', '.join(infinite)}: their steps use sigma, log-SNR, f or g, which are "
                  "infinite at that start (they do not declare handles_infinite_sigma)",
                  file=sys.stderr)
        for name, reason in refused.items():
            if name not in infinite:
                print(f"note: not run on {spec}: {reason}", file=sys.stderr)
        names.update(refused)
    return names


CONSOLE_WIDTH = 118


def _order_text(measured, ci95) -> str:
    """"m ± c", or "m" with no finite CI, or "" with no measured order (None or NaN)."""
    import pandas as pd

    if pd.isna(measured):
        return ""
    return f"{measured:.2f}" if pd.isna(ci95) or ci95 == float("inf") else \
        f"{measured:.2f} ± {ci95:.2f}"


def _print_rows(rows: list[list[str]], header: list[str], name_column: int,
                details: list[list[tuple[str, str]]]) -> None:
    """Aligned columns within :data:`CONSOLE_WIDTH`: a name too long for its column goes on a
    line of its own above its row; each row's (label, text) details follow it, wrapped and
    indented."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    others = sum(width for i, width in enumerate(widths) if i != name_column) + len(widths) - 1
    widths[name_column] = max(len(header[name_column]),
                              min(widths[name_column], CONSOLE_WIDTH - others))

    def line(cells):
        return " ".join(f"{cell:<{width}}" if i <= name_column or i == len(cells) - 1
                        else f"{cell:>{width}}"
                        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(line(header))
    for cells, extra in zip(rows, details, strict=True):
        name = cells[name_column]
        if len(name) > widths[name_column]:
            print(f"{' '.join(cells[:name_column])} {name}".strip())
            cells = [""] * (name_column + 1) + cells[name_column + 1:]
        print(line(cells))
        for label, text in extra:
            if text:
                print(textwrap.fill(f"{label}: {text}", CONSOLE_WIDTH, initial_indent="    ",
                                    subsequent_indent="      "))


def _print_answer(analysis, results, verbose: bool) -> None:
    """Per configuration, one line per sampler: kind, verdict, measured ± CI and declared order
    on the headline metric, the metric at each NFE budget and the time per sample; the evidence
    of every verdict that is not a PASS below its line (an N/A's note with --verbose)."""
    from sdebench.reports.tables import format_seconds
    from sdebench.studies.analysis import time_budget
    from sdebench.studies.precision import BUDGET_MARKS, budget_text

    firsts = results.drop_duplicates("config_id").set_index("config_id")
    for config_id, answer in analysis.answer.groupby("config_id", sort=False):
        metric = answer.metric.iloc[0]
        errors = analysis.answer_errors(config_id).set_index(["sampler", "nfe"])
        first = firsts.loc[config_id]
        score = first.get("score")
        score = f" ({score} score)" if isinstance(score, str) and score else ""
        print(f"{first['schedule']}{score}, {first['problem']}, d={first['dim']}, {first['dtype']} — "
              f"{metric} at NFE budgets ({BUDGET_MARKS}):")
        rows, details = [], []
        for row in answer.itertuples():
            declared = "" if row.declared_order != row.declared_order else f"{row.declared_order:g}"
            cells = [row.sampler, row.kind, row.verdict, _order_text(row.measured_order, row.ci95),
                     declared]
            for n in analysis.budgets:
                cell = errors.loc[(row.sampler, n)] if (row.sampler, n) in errors.index else None
                cells.append("" if cell is None else
                             budget_text(cell.value, cell.read, bool(cell.at_floor),
                                         bool(cell.best)))
            cells.append(format_seconds(row.seconds_per_sample))
            rows.append(cells)
            evidence = row.reason if row.verdict != "N/A" else (row.note if verbose else "")
            details.append([("why", evidence)])
        _print_rows(rows, ["sampler", "kind", "verdict", "order", "decl"]
                    + [f"NFE {n}" for n in analysis.budgets]
                    + [f"time@{time_budget(analysis.budgets)}"], 0, details)


def _print_other_orders(analysis, verbose: bool) -> None:
    """The fitted orders of the metrics other than the headline one (e.g. strong errors), and
    with --verbose every fit's steps, points and note."""
    import pandas as pd

    table = analysis.orders
    if table.empty:
        return
    others = table if verbose else table[table.metric != table.config_id.map(analysis.headline)]
    if others.empty:
        return
    print("fitted orders" + ("" if verbose else " of the other metrics") + ":")
    scored = others.score.ne("").any()
    rows, details = [], []
    for _, row in others.iterrows():
        schedule = f"{row.schedule} ({row.score})" if scored and row.score else row.schedule
        declared = "" if pd.isna(row.declared_order) else f"{row.declared_order:g}"
        rows.append([schedule, row.sampler, row.metric, str(row.points), str(row.fit_steps),
                     _order_text(row.measured_order, row.ci95), declared, row.verdict])
        details.append([("reason", row.reason), ("note", row.note if verbose else "")])
    _print_rows(rows, ["schedule", "sampler", "metric", "points", "fit_steps", "order",
                       "declared", "verdict"], 1, details)


def _print_conformance(analysis) -> None:
    """Per peer sampler: declared and measured order, verdict, agreement with sdebench's twin
    (sdebench.studies.conformance), and how it agrees below."""
    import pandas as pd

    table = analysis.conformance
    if table.empty:
        return
    print("peer conformance (declared order: see order_source in results.csv):")
    rows = [[row.library, row.sampler,
             "" if pd.isna(row.declared_order) else f"{row.declared_order:g}",
             _order_text(row.measured_order, row.ci95), row.verdict, row.twin,
             "" if pd.isna(row.agreement) else f"{row.agreement:.2g}"]
            for _, row in table.iterrows()]
    _print_rows(rows, ["library", "sampler", "declared", "order", "verdict", "twin", "agreement"],
                1, [[("agrees", row.agrees)] for _, row in table.iterrows()])


def _print_score_errors(study) -> None:
    """The score-error floor of each learned-score section (sdebench.studies.learned)."""
    from sdebench.studies.learned import SCORE_ERROR_NOTE

    if study.score_errors.empty:
        return
    for config_id, frame in study.score_errors.groupby("config_id", sort=False):
        schedule = study.sections[config_id]["config"]["schedule"]
        worst = frame.loc[frame.score_error.idxmax()]
        print(f"learned score on {schedule}: ½∫g² e(t) dt = {frame.bound.iloc[0]:.4g} ± "
              f"{frame.bound_stderr.iloc[0]:.2g} (the KL bound's right side for the reverse SDE; "
              f"e(t) = E‖s_θ − ∇log p_t‖² ranges {frame.score_error.min():.3g}–"
              f"{worst.score_error:.3g}, largest at σ = {worst.sigma:.3g}; {SCORE_ERROR_NOTE})")


def _print_other_errors(analysis, results) -> None:
    """The other error metrics (not the headline one) at the NFE budgets, one table each."""
    from sdebench.studies.precision import budget_text

    others = analysis.other_errors()
    firsts = results.drop_duplicates("config_id").set_index("config_id")
    for (config_id, metric), part in others.groupby(["config_id", "metric"], sort=False):
        rows = [[sampler] + [budget_text(c.value, c.read, bool(c.at_floor), bool(c.best))
                             for c in cells.itertuples()]
                for sampler, cells in part.sort_values("nfe").groupby("sampler", sort=False)]
        print(f"{metric} at NFE budgets — {firsts.schedule[config_id]}:")
        _print_rows(rows, ["sampler"] + [f"NFE {n}" for n in sorted(part.nfe.unique())], 0,
                    [[] for _ in rows])


@contextlib.contextmanager
def _dask_client(args, device: str):
    """A dask client for --workers (an embedded LocalCluster, its workers bounded) or
    --scheduler (reached within its timeout), closed on exit; None otherwise. A cluster that
    cannot be used raises ClusterError (sdebench.studies.distributed.cluster_client)."""
    if not (args.workers or args.scheduler):
        yield None
        return
    from sdebench.studies.distributed import cluster_client

    with cluster_client(workers=args.workers, scheduler=args.scheduler,
                        gpus=int(device.startswith("cuda"))) as client:
        if not args.quiet:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


def _summary(args, config, store, study) -> int:
    """Print what the study found, write its report; the exit status."""
    from sdebench.studies.analysis import analyse
    from sdebench.studies.order import VERDICT_LEGEND, VERDICT_SUMMARY
    from sdebench.studies.reference import reference_summary

    print(f"results: {store.directory} (one file per unit in units/; results.csv, orders.csv)")
    unmeasured = set(config.samplers) - set(study.results.sampler) - args.refused_samplers
    for sampler in sorted(unmeasured):  # the refused ones were named when parsing
        print(f"note: no requested metric applies to {sampler} (e.g. strong_error needs a "
              "declared strong order)", file=sys.stderr)
    results = study.results
    failed = results[results.status == "failed"]
    for (unit_id, error), rows in failed.groupby(["unit_id", "error"], sort=False):
        row = rows.iloc[0]
        whole = len(rows) == int((results.unit_id == unit_id).sum())
        which = "" if whole else f" ({', '.join(rows.metric)})"
        print(f"FAILED {row.schedule} {row.sampler} {row.steps} steps{which}: {error}",
              file=sys.stderr)
    analysis = analyse(study.results, args.budgets) if args.budgets else study.analysis
    table = analysis.orders
    _print_answer(analysis, study.results, args.verbose)
    _print_other_errors(analysis, study.results)
    _print_other_orders(analysis, args.verbose)
    if not table.empty:
        for line in reference_summary(table):
            print(line)
        _print_score_errors(study)
        _print_conformance(analysis)
        counts = table.verdict.value_counts().to_dict()
        print("verdicts:", ", ".join(f"{k} {v}" for k, v in counts.items()))
        print(textwrap.fill(VERDICT_LEGEND if args.verbose else VERDICT_SUMMARY, CONSOLE_WIDTH))
    if not args.no_report:
        from sdebench.experiments.report import render_directory

        path = render_directory(store.directory, progress=not args.quiet, analysis=analysis)
        print(f"report: {path}")
    return 1 if (not failed.empty or (not table.empty and (table.verdict == "FAIL").any())) else 0


def main(argv=None, prog: str | None = None) -> int:
    name = prog or "convergence.py"
    try:
        args, config, store = parse_args(argv, prog)
        if args.list:
            from sdebench.studies.config import known_names

            for catalogue, names in known_names().items():
                print(f"{catalogue}: {', '.join(names)}")
            return 0
        from sdebench.studies.convergence import run_study
        from sdebench.studies.distributed import ClusterError  # imports dask only when used
        from sdebench.studies.store import StoreError
    except KeyboardInterrupt:
        print(f"{name}: interrupted while starting, before any unit ran (nothing is stored); run "
              "the command again", file=sys.stderr)
        return 130
    # the program's words (e.g. "sdebench convergence") stay words: the command pastes into a shell
    command = shlex.join([*(prog or "python experiments/convergence.py").split(), *(
        sys.argv[1:] if argv is None else argv)])
    try:
        with warnings.catch_warnings(), _dask_client(args, config.device) as client:
            warnings.simplefilter("always")
            study = run_study(config, store, progress=not args.quiet, command=command,
                              trajectories=not args.no_report, client=client,
                              plugins=tuple(args.plugin), sections=args.sections)
    except StoreError as error:  # another process took the directory after our check
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except ClusterError as error:  # --scheduler unreachable or malformed, --workers refused
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted: every finished unit is stored in {store.directory}; run the "
              "same command again to resume", file=sys.stderr)
        return 130
    try:
        return _summary(args, config, store, study)
    except StoreError as error:  # the report (or a view) cannot be written: the units are kept
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted after the study, before its report was written: every unit "
              f"is stored in {store.directory}; write the report with: sdebench report "
              f"{shlex.quote(str(store.directory))}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
