"""The console (experiments/convergence.py): per configuration one aligned line per sampler
within 118 columns — verdict, order, error at the NFE budgets, time — a name too long for its
column on a line of its own, and the evidence of every verdict but PASS wrapped below."""

import contextlib
import io
import shlex

import numpy as np
import pandas as pd

from sdebench.experiments.convergence import (
    CONSOLE_WIDTH,
    _print_answer,
    _print_other_orders,
    main,
)
from sdebench.studies.analysis import analyse

LONG = "diffusers.DPMSolverMultistepScheduler:use_flow_sigmas='true':flow_shift=3.0:mu=0.5"


def _rows(sampler, values, declared):
    steps = [16, 32, 64, 128]
    n = len(steps)
    return pd.DataFrame({"config_id": ["c"] * n, "schedule": ["rf"] * n, "problem": ["g"] * n,
                         "dim": [4] * n, "dtype": ["float64"] * n, "library": ["sdebench"] * n,
                         "sampler": [sampler] * n, "metric": ["w2"] * n, "stochastic": [False] * n,
                         "unit_id": [f"{sampler}-{k}" for k in steps], "nfe": steps,
                         "batch": [256] * n, "wall_time": [1e-3 * k for k in steps],
                         "metric_order": ["order"] * n, "steps": steps, "value": values,
                         "floor": [np.nan] * n, "floor_kind": [""] * n, "stderr": [np.nan] * n,
                         "reference": [np.nan] * n, "status": ["ok"] * n,
                         "declared_order": [declared] * n, "declared_strong_order": [np.nan] * n,
                         "order_note": ["no order is declared for it"] * n, "score": [""] * n})


def _results():
    first_order = [2.0 ** -k for k in range(4, 8)]
    return pd.concat([_rows("euler", first_order, 1.0), _rows(LONG, first_order, 3.0),
                      _rows("pndm", first_order, None)], ignore_index=True)


def test_long_names_and_reasons_stay_within_the_width(capsys):
    results = _results()
    _print_answer(analyse(results), results, verbose=False)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= CONSOLE_WIDTH
    assert lines[0].startswith("rf, g, d=4, float64 — w2 at NFE budgets")
    assert lines[1].split()[:3] == ["sampler", "kind", "verdict"]
    assert lines[2].split()[:3] == ["euler", "ODE", "PASS"]
    assert lines[3] == LONG  # its own line, then its numbers below it
    assert lines[4].split()[:2] == ["ODE", "FAIL"]
    assert lines[5].startswith("    why: 1.00 ± 0.00 is below the declared 3")  # its evidence
    assert lines[6].split()[:3] == ["pndm", "ODE", "N/A"] and len(lines) == 7  # note: --verbose
    # NFE 16–128 at slope 1 (value = 1/n): NFE 20 and 50 are read on the line, 10 extrapolated
    # (≥ 16/2), and N/A pndm is never best
    assert lines[2].split()[7:10] == ["0.1†*", "0.05*", "0.02*"]  # after "1.00 ± 0.00 1"
    assert "*" not in lines[6]


def test_the_report_writes_the_consoles_budget_cells():
    """One function writes an error at a budget for both views; the report's cell holds the
    console's text (it used to drop the best mark and show a value at the floor as a number)."""
    import re

    from sdebench.reports.tables import answer

    results = _results()
    results.loc[(results.sampler == "euler") & (results.steps == 128), "floor"] = 1.0  # at it
    analysis = analyse(results)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _print_answer(analysis, results, verbose=False)
    console = printed.getvalue().splitlines()[2].split()[7:11]
    assert console == ["0.1†*", "0.05*", "0.02*", "floor"]
    row = re.search(r"<tr><th>euler</th>(.*?)</tr>", answer(analysis, "c")).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[4:8] == console  # kind, verdict, order, declared, then the budgets
    # NFE 100 lies between the runs at 64 and 128 on the line 1/n, and the floor of 128 is 1
    assert '<td class="floor" title="0.01: not above the error floor">floor</td>' in row


def test_verbose_adds_every_fit_and_its_note(capsys):
    results = _results()
    _print_other_orders(analyse(results), verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= CONSOLE_WIDTH
    assert lines[-2].split()[:2] == ["rf", "pndm"] and lines[-2].endswith("N/A")
    assert lines[-1] == "    note: no order is declared for it"


def test_the_recorded_command_pastes_into_a_shell(tmp_path, capsys):
    """"Produced by" used to quote 'python experiments/convergence.py' as one word."""
    status = main(["--sde", "vp", "--samplers", "euler", "--steps", "4,8", "--dim", "2",
                   "--batch", "8", "--out", str(tmp_path), "--no-report", "--quiet"],
                  prog="sdebench convergence")
    assert status == 0
    import json

    (section,) = json.loads((tmp_path / "sections.json").read_text()).values()
    assert shlex.split(section["commands"][0])[:4] == ["sdebench", "convergence", "--sde", "vp"]
