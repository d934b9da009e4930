"""Render a report in headless Chromium and look at it as a person would.

Needs Debian's ``chromium`` (``.ci/run`` installs it and sets SDEBENCH_REQUIRE_BROWSER=1, so in CI
a missing browser is a failure, not a skip).
"""

import os
import re
import shutil
import subprocess

import matplotlib.image
import pytest

from sdebench.reports.html import StudyFrames, write_report
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]

pytestmark = pytest.mark.browser
if CHROMIUM is None and os.environ.get("SDEBENCH_REQUIRE_BROWSER") != "1":
    pytestmark = [pytest.mark.browser, pytest.mark.skip(
        reason="Debian chromium not installed (apt-get install chromium); CI installs it")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    assert CHROMIUM is not None, "chromium is required here (SDEBENCH_REQUIRE_BROWSER=1)"
    study = run_study(StudyConfig(schedules=["vp", "edm"], samplers=["euler", "heun", "ddim"],
                                  steps=[8, 16, 32], dim=2, batch=16, metrics=["w2"]),
                      progress=False, trajectories=False)
    frames = StudyFrames(study.results, study.orders, study.samples, study.trajectories,
                         study.sections)
    return write_report(frames, tmp_path_factory.mktemp("report") / "report.html")


def _chromium(report, tmp_path, *extra):
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra,
                           report.as_uri()], capture_output=True, text=True, timeout=120)


def test_rendered_page_has_figures_and_filled_tables(report, tmp_path):
    result = _chromium(report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert len(re.findall(r"<svg", dom)) == 6  # W2, work–precision, scatter for each schedule
    verdicts = re.findall(r'<td class="(PASS|FAIL|ABOVE|INCONCLUSIVE|N/A)">', dom)
    assert len(verdicts) == 6 and "FAIL" not in verdicts
    assert "Environment" in dom and "torch" in dom
    console_errors = [line for line in result.stderr.splitlines()
                      if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)]
    assert not console_errors


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    result = _chromium(report, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.std() > 0.05  # text and plots, not a blank page
