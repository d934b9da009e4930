"""Reports render stored frames: one section per configuration, nothing re-run, nothing fitted."""

import subprocess
import sys
from pathlib import Path

import pytest

from sdebench.experiments.report import render_directory
from sdebench.reports.html import StudyFrames, render_report
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def _config(**kwargs):
    defaults = dict(schedules=["vp"], samplers=["euler", "euler_maruyama"], steps=[16, 32, 64],
                    dim=2, batch=16)
    return StudyConfig(**{**defaults, **kwargs})


def _frames(result):
    return StudyFrames(result.results, result.analysis, result.samples, result.trajectories, result.sections)


def test_report_is_self_contained():
    page = render_report(_frames(run_study(_config(), progress=False)))
    assert "<script" not in page and "http" not in page.split("<svg")[0]
    # w2, kl, strong_error, work–precision, 2-D scatter, trajectories
    assert page.count("<svg") == 6
    assert "PASS" in page and "Environment" in page


def test_each_configuration_is_its_own_section_with_its_settings(tmp_path):
    """A GMM run used to put its scatter plots under the Gaussian section, and report.py fitted
    one order over rows of different dtypes (rk4 float32 + float64: −3.49 ± 164.7, PASS)."""
    store = ResultStore(tmp_path)
    run_study(_config(samplers=["rk4"], steps=[8, 16, 32]), store, progress=False,
              trajectories=False, command="first command")
    run_study(_config(samplers=["rk4"], steps=[8, 16, 32], dtype="float32"), store,
              progress=False, trajectories=False, command="second command")
    page = (render_directory(tmp_path)).read_text()
    assert page.count("<h2>vp — gaussian") == 2
    assert "float32, grid logsnr" in page and "float64, grid logsnr" in page
    first, second = page.index("first command"), page.index("second command")
    assert page.index("float64, grid logsnr") < first < page.index("float32, grid logsnr") < second


def test_report_command_renders_without_running_a_sampler(tmp_path):
    run_study(_config(steps=[8, 16]), ResultStore(tmp_path), progress=False, command="study cmd")
    script = ("import sys, sdebench.solvers.loop as loop\n"
              "loop.sample = lambda *a, **k: sys.exit('a sampler was run')\n"
              "from sdebench.experiments.report import main\n"
              f"sys.exit(main([{str(tmp_path)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 6  # as above: every stored frame is drawn
    assert "study cmd" in page  # the command that produced the rows, not report's own


@pytest.mark.parametrize("output", ["results.csv", "units/x.html", "report.txt"])
def test_report_refuses_to_overwrite_results(tmp_path, output):
    run_study(_config(steps=[8, 16]), ResultStore(tmp_path), progress=False, trajectories=False)
    before = (tmp_path / "results.csv").read_text()
    result = subprocess.run([sys.executable, str(ROOT / "experiments" / "report.py"),
                             str(tmp_path), "--output", str(tmp_path / output)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "error" in result.stderr
    assert (tmp_path / "results.csv").read_text() == before


def test_report_of_an_empty_directory_says_so(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "experiments" / "report.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "no stored results" in result.stderr


def test_scatter_panel_titles_do_not_run_into_other_panels():
    """Scatter-panel titles used to overlap the tick labels of the row above."""
    import matplotlib.pyplot as plt

    from sdebench.reports.figures import scatter_panels

    study = run_study(_config(samplers=["euler", "heun", "ddim"], steps=[4, 8, 16], dim=2),
                      progress=False, trajectories=False)
    figure = scatter_panels(study.samples)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes
    for axis in axes:
        title = axis.title.get_window_extent(renderer)
        for other in axes:
            if other is not axis:
                assert not title.overlaps(other.get_tightbbox(renderer)), axis.get_title()
    plt.close(figure)


def _curves():
    """Two exact power laws: a = 0.4 (n/8)⁻² at NFE 8, 16, 32 (Monte Carlo floor 0.001, so
    3 × 0.001 effective), b = 0.02 (n/16)⁻¹ at NFE 16, 32, 64 (floor 0.004 → 0.012)."""
    import numpy as np
    import pandas as pd

    def rows(sampler, nfe, values, floor):
        return pd.DataFrame({"config_id": "c", "metric": "w2", "metric_order": "order",
                             "sampler": sampler, "nfe": nfe, "value": values, "floor": floor,
                             "floor_kind": "Monte Carlo", "status": "ok", "reference": np.nan})

    return pd.concat([rows("a", [8, 16, 32], [0.4, 0.1, 0.025], 0.001),
                      rows("b", [16, 32, 64], [0.02, 0.01, 0.005], 0.004)])


def test_error_at_nfe_interpolates_marks_and_ranks_above_the_floor():
    """NFE targets are read off each curve (log–log interpolation; by default never
    extrapolated); a value at the error floor is marked and never 'best'."""
    import numpy as np

    from sdebench.studies.precision import error_at_nfe

    table = error_at_nfe(_curves()).set_index(["sampler", "nfe"])
    assert table.loc[("a", 10), "value"] == pytest.approx(0.4 * (10 / 8) ** -2)  # slope 2
    assert table.loc[("a", 20), "read"] == "interpolated"
    assert np.isnan(table.loc[("a", 100), "value"])  # beyond a's last run: not extrapolated
    assert np.isnan(table.loc[("b", 10), "value"])  # below b's first run
    assert table.loc[("b", 50), "at_floor"]  # ≈0.0064 < 3 × 0.004 (a Monte Carlo floor)
    assert table.loc[("a", 10), "best"]  # the only value at NFE 10
    assert table.loc[("b", 20), "best"] and not table.loc[("a", 20), "best"]  # 0.016 < 0.064
    assert not table.loc[("b", 50), "best"]  # at the floor: not a ranking


def test_error_at_nfe_extrapolates_at_most_its_reach_and_never_ranks_an_unjudged_sampler():
    """With reach 2, a value up to 2× past a sampler's runs lies on the line through its two
    outermost runs and is marked; further out it is blank; a sampler judged N/A (no declared
    order) is never best."""
    import numpy as np
    import pandas as pd

    from sdebench.studies.precision import error_at_nfe

    table = error_at_nfe(_curves(), reach=2.0).set_index(["sampler", "nfe"])
    # an exact power law continues exactly: a's slope 2 past NFE 32, b's slope 1 below 16
    assert table.loc[("a", 50), "value"] == pytest.approx(0.025 * (50 / 32) ** -2, rel=1e-12)
    assert table.loc[("a", 50), "read"] == "extrapolated"
    assert table.loc[("b", 10), "value"] == pytest.approx(0.02 * (10 / 16) ** -1, rel=1e-12)
    assert table.loc[("b", 10), "read"] == "extrapolated"
    assert np.isnan(table.loc[("a", 100), "value"]) and table.loc[("a", 100), "read"] == ""  # > 64
    assert table.loc[("b", 10), "best"]  # 0.032 < a's 0.256
    orders = pd.DataFrame({"config_id": ["c"], "sampler": ["b"], "metric": ["w2"],
                           "verdict": ["N/A"]})
    unjudged = error_at_nfe(_curves(), reach=2.0, orders=orders).set_index(["sampler", "nfe"])
    assert not unjudged.loc[("b", 10), "best"] and unjudged.loc[("a", 10), "best"]


def test_metric_figure_keeps_its_legend_off_the_axes_and_names_its_units():
    """The legend used to sit inside the axes, over the curves; 17 samplers shared 10 colours.
    Now each of 24 samplers has its own colour–line pair, the legend lies beside the axes, and
    the figure has a title and units on both axes."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from sdebench.reports.figures import metric_plot, sampler_styles

    samplers = [f"s{k}" for k in range(24)]
    frame = pd.DataFrame([{"sampler": name, "nfe": n, "value": (k + 1) * n ** -1.0,
                           "stochastic": k % 3 == 0, "library": "sdebench", "metric_order": "order",
                           "declared_order": 1.0, "floor": np.nan, "floor_kind": None,
                           "reference": np.nan}
                          for k, name in enumerate(samplers) for n in (8, 16, 32)])
    styles = sampler_styles(frame)
    assert len({(s["color"], s["linestyle"]) for s in styles.values()}) == 24
    figure = metric_plot(frame, "w2", "w2 versus NFE")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (axis,) = figure.axes
    legend = axis.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(axis.get_window_extent(renderer))
    assert axis.get_title().startswith("w2 versus NFE")
    assert "[" in axis.get_xlabel() and "[" in axis.get_ylabel()  # units
    plt.close(figure)
