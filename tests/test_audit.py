"""The field audit (experiments/audit.py, sdebench.peers.audit): its stages run as stored
convergence studies, its table has one row per (stage, peer sampler) with the evidence and the
finding, and its page and summary render from that table."""

import pandas as pd
import pytest

from sdebench.peers.audit import (
    ADAPTIVE,
    FINDINGS,
    INVERSIONS,
    NOT_JUDGED,
    STAGE_FINDINGS,
    stage_names,
    stages,
)

pytestmark = [pytest.mark.peers, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def test_every_peer_is_in_a_stage_and_every_finding_names_an_audited_sampler():
    from sdebench.solvers.catalogue import sampler_groups

    peers = sampler_groups()["peers"]
    audited = {name for stage in stages(peers) for name in stage.samplers}
    assert set(peers) <= audited | set(ADAPTIVE)
    assert set(FINDINGS) <= audited
    by_stage = {stage.name: set(stage.samplers) for stage in stages(peers)}
    assert all(spec in by_stage[stage] for stage, spec in STAGE_FINDINGS)


def test_the_audit_runs_resumes_and_renders(tmp_path, capsys):
    """A small budget (8 steps: rows, not verdicts): every stage's rows, the 3M finding
    attached to its sampler, the rows of the samplers no order judges (the inversions' round
    trips, dpm_adaptive's error at its NFE, ScoreSdeVe's corrector with its reason), the page
    and the CSV written; a second run reuses every stored unit."""
    from sdebench.experiments.audit import main

    status = main(["--out", str(tmp_path), "--steps", "8", "--quiet"])
    table = pd.read_csv(tmp_path / "audit.csv", keep_default_na=False)
    assert status == (1 if (table.verdict == "FAIL").any() else 0)
    assert set(table.stage) == set(stage_names())
    rows = table.set_index("sampler")
    row = rows.loc["diffusers.DPMSolverMultistepScheduler:solver_order=3"]
    assert row.finding == "dpmpp_3m_second_order.py" and row.version.startswith("diffusers ")
    assert set(INVERSIONS) <= set(rows.index)
    assert (rows.loc[list(INVERSIONS)].declared_order.astype(float) > 0).all()
    adaptive = table[table.sampler.str.startswith(ADAPTIVE)]
    assert len(adaptive) == 4 and adaptive.reason.str.contains("at its measured NFE").all()
    corrector = rows.loc["diffusers.ScoreSdeVeScheduler"]
    assert corrector.verdict == NOT_JUDGED and "batch's mean norms" in corrector.reason
    page = (tmp_path / "audit.html").read_text()
    assert "experiments/findings/dpmpp_3m_second_order.py" in page and "<h2>zero terminal" in page
    summary = capsys.readouterr().out
    assert summary.startswith("audit: ") and max(map(len, summary.splitlines())) <= 120
    units = sorted((tmp_path).rglob("units/*.json"))
    assert main(["--out", str(tmp_path), "--steps", "8", "--quiet"]) == status
    assert sorted((tmp_path).rglob("units/*.json")) == units  # nothing run twice


def test_the_summary_keeps_a_fail_s_evidence_when_its_line_is_cut(capsys):
    """A FAIL line names its measured order, CI and declared order before the spec and the
    schedule, which are what the 118-column width cuts (a table: schedule's spec cut them)."""
    from sdebench.experiments.audit import SUMMARY_WIDTH, print_summary

    schedule = "table:beta_end=0.012:beta_schedule='scaled_linear':beta_start=0.00085"
    print_summary(pd.DataFrame([{"verdict": "FAIL", "sampler": "diffusers." + "X" * 60,
                                 "schedule": schedule, "measured_order": 0.8628,
                                 "ci95": 0.0081, "declared_order": 1.0, "finding": ""}]))
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("FAIL 0.86 ± 0.01 (declared 1): diffusers.XXX")
    assert len(line) == SUMMARY_WIDTH
