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
from sdebench.solvers.catalogue import sampler_groups
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


SAMPLERS = sampler_groups()["all"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    assert CHROMIUM is not None, "chromium is required here (SDEBENCH_REQUIRE_BROWSER=1)"
    # every sampler of the README's vp study (17 answer rows); pc's long note and
    # euler_maruyama's strong error ("against" its reference) widen the order table as in that
    # study, which was 1448 px wide before tables scrolled in a box
    study = run_study(StudyConfig(schedules=["vp", "edm"], samplers=SAMPLERS, steps=[8, 16, 32],
                                  dim=2, batch=16, metrics=["w2", "strong_error"]),
                      progress=False, trajectories=False)
    frames = StudyFrames(study.results, study.analysis, study.samples,
                         study.trajectories, study.sections)
    return write_report(frames, tmp_path_factory.mktemp("report") / "report.html")


def _chromium(report, tmp_path, *extra):
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra,
                           report.as_uri()], capture_output=True, text=True, timeout=120)


def test_rendered_page_has_figures_and_filled_tables(report, tmp_path):
    result = _chromium(report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # W2, strong error, work–precision, scatter for each schedule
    assert len(re.findall(r"<svg", dom)) == 8
    # per schedule: each sampler's W2 verdict in the answer table (with its evidence as a
    # tooltip), then every fit (W2 and euler_maruyama's strong error) in the order table
    answer = re.findall(r'<td class="(PASS|FAIL|ABOVE|INCONCLUSIVE|N/A)" title=', dom)
    fits = re.findall(r'<td class="(PASS|FAIL|ABOVE|INCONCLUSIVE|N/A)">', dom)
    assert len(answer) == 2 * len(SAMPLERS) and len(fits) == 2 * (len(SAMPLERS) + 1)
    assert "FAIL" not in answer + fits
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


# Measures the page as laid out at 1400 px: every top-level block's box, the widest content and
# each figure's box. Injected into a *copy* of the report only (the report itself has no scripts).
_LAYOUT_PROBE = """<script>
const box = e => { const r = e.getBoundingClientRect();
  return {tag: e.tagName, x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height}; };
const out = document.createElement('pre'); out.id = 'layout';
out.textContent = JSON.stringify({blocks: [...document.body.children].map(box),
  figures: [...document.querySelectorAll('figure svg')].map(box),
  answers: [...document.querySelectorAll('table.answer')].map(t =>
    ({...box(t), head: t.tHead.textContent, rows: t.tBodies[0].rows.length})),
  legends: [...document.querySelectorAll('figure svg')].flatMap(s => {
    const legend = s.querySelector('g[id^="legend_"]');
    return legend ? [{legend: box(legend),
      axes: [...s.querySelectorAll('g[id^="axes_"] > g[id^="patch_"]')].map(box)}] : []; }),
  width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight});
document.body.appendChild(out);
</script>"""


def _layout(report, tmp_path, height: int = 1000):
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", _LAYOUT_PROBE + "</body>"))
    result = _chromium(probed, tmp_path, f"--window-size=1400,{height}", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    import html
    import json

    text = re.search(r'<pre id="layout">(.*?)</pre>', result.stdout, re.S).group(1)
    return json.loads(html.unescape(text))


def _overlap(a, b) -> bool:
    return (a["x"] + 1 < b["x"] + b["w"] and b["x"] + 1 < a["x"] + a["w"]
            and a["y"] + 1 < b["y"] + b["h"] and b["y"] + 1 < a["y"] + a["h"])


def test_layout_at_1400_px_has_no_overlaps_and_no_overflow(report, tmp_path):
    layout = _layout(report, tmp_path)
    blocks = [b for b in layout["blocks"] if b["w"] > 0 and b["h"] > 0 and b["tag"] != "PRE"]
    overlapping = [(a["tag"], b["tag"], a["y"]) for i, a in enumerate(blocks)
                   for b in blocks[i + 1:] if _overlap(a, b)]
    assert not overlapping, overlapping
    assert layout["width"] <= 1400, "content wider than the window: a table or figure overflows"


def test_first_screen_answers_which_sampler_at_which_budget(report, tmp_path):
    """At 1400×900, without scrolling: the first section's answer table, every sampler of the
    study with its verdict and its error at NFE 10, 20 and 50 (the configuration used to fill
    the first 800 px)."""
    layout = _layout(report, tmp_path, height=900)
    first = layout["answers"][0]
    assert first["y"] + first["h"] <= 900, first
    assert first["rows"] == len(SAMPLERS)
    for column in ("verdict", "w2 at NFE 10", "w2 at NFE 20", "w2 at NFE 50", "time per sample"):
        assert column in first["head"], first["head"]


def test_no_legend_covers_its_axes(report, tmp_path):
    layout = _layout(report, tmp_path)
    assert len(layout["legends"]) == 6  # W2, strong error and work–precision, per schedule
    for figure in layout["legends"]:
        for axes in figure["axes"]:
            assert not _overlap(figure["legend"], axes), figure


def test_every_figure_is_drawn(report, tmp_path):
    """Each figure's region of a full-page screenshot holds a drawing (not a blank box)."""
    layout = _layout(report, tmp_path)
    shot = tmp_path / "page.png"
    height = int(layout["height"]) + 10
    result = _chromium(report, tmp_path, f"--screenshot={shot}", f"--window-size=1400,{height}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert len(layout["figures"]) == 8  # as counted in the DOM above
    for figure in layout["figures"]:
        x, y, w, h = (int(figure[k]) for k in ("x", "y", "w", "h"))
        region = pixels[y:y + h, x:x + w]
        assert region.size and region.std() > 0.05, figure
