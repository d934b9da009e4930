"""The console's order table (experiments/convergence.py): one aligned line per fit within 118
columns, a name too long for its column on a line of its own, reasons and notes wrapped below."""

import numpy as np
import pandas as pd

from sdebench.experiments.convergence import CONSOLE_WIDTH, _print_table
from sdebench.studies.order import order_table

LONG = "diffusers.DPMSolverMultistepScheduler:use_flow_sigmas='true':flow_shift=3.0:mu=0.5"


def _rows(sampler, values, declared):
    steps = [16, 32, 64, 128]
    n = len(steps)
    return pd.DataFrame({"config_id": ["c"] * n, "schedule": ["rf"] * n, "problem": ["g"] * n,
                         "sampler": [sampler] * n, "metric": ["w2"] * n,
                         "metric_order": ["order"] * n, "steps": steps, "value": values,
                         "floor": [np.nan] * n, "floor_kind": [""] * n, "stderr": [np.nan] * n,
                         "status": ["ok"] * n, "declared_order": [declared] * n,
                         "declared_strong_order": [np.nan] * n, "order_note": [""] * n,
                         "score": [""] * n})


def test_long_names_and_reasons_stay_within_the_width(capsys):
    first_order = [2.0 ** -k for k in range(4, 8)]
    table = order_table(pd.concat([_rows("euler", first_order, 1.0),
                                   _rows(LONG, first_order, 3.0), _rows("pndm", first_order, None)]))
    _print_table(table)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= CONSOLE_WIDTH
    assert lines[1].split()[:3] == ["rf", "euler", "w2"] and lines[1].endswith("PASS")
    assert lines[2] == f"rf {LONG}"  # its own line, then its numbers below it
    assert lines[3].split()[0] == "w2" and lines[3].endswith("FAIL")
    assert lines[4].startswith("    reason: 1.00 ± 0.00 is below the declared 3")  # its evidence
    assert lines[5].split()[:2] == ["rf", "pndm"] and lines[5].endswith("N/A")  # declared None
