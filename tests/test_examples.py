"""The plugin example (examples/) runs as a user would run it: a user sampler, schedule (with
erf), problem and metric go through studies from Python, from the CLI and as an installed plugin,
and appear in the report."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(*command, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=env)


def test_plugin_study_from_python(tmp_path):
    result = _run(str(EXAMPLES / "plugin_study.py"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {tuple(line.split()[:5]): line for line in result.stdout.splitlines()}
    assert "PASS" in lines[("erf_ve", "gaussian", "ralston", "w2", "3")]
    page = (tmp_path / "report.html").read_text()
    assert page.count("<h2>erf_ve") == 2  # one section per configuration
    assert "second_moment_error versus NFE" in page and "ralston" in page


def test_plugin_through_the_cli(tmp_path):
    result = _run(str(ROOT / "experiments" / "convergence.py"), "--plugin",
                  str(EXAMPLES / "my_plugin.py"), "--sde", "erf_ve", "--samplers", "ralston",
                  "--steps", "32,64,128,256", "--metrics", "w2,second_moment_error", "--quiet",
                  "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("erf_ve, gaussian") and "w2 at NFE budgets" in line for line in lines)
    answer = next(line for line in lines if line.startswith("ralston "))  # judged on w2
    assert answer.split()[:3] == ["ralston", "ODE", "PASS"]
    other = lines.index(next(line for line in lines if " second_moment_error " in line))
    assert lines[other].split()[:2] == ["erf_ve", "ralston"]  # the plugin's metric, fitted too
    verdict = lines[other].split()[-1]
    assert verdict == "PASS" or lines[other + 1].startswith("    reason: ")  # with its evidence
    assert "second_moment_error" in (tmp_path / "out" / "report.html").read_text()


def test_installed_plugins_load_through_entry_points(tmp_path):
    """A distribution that declares an entry point in the group sdebench.plugins: its names are
    known without --plugin."""
    dist_info = tmp_path / "my_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[sdebench.plugins]\nmine = my_plugin\n")
    env = {"PYTHONPATH": f"{tmp_path}:{EXAMPLES}", "PATH": "/usr/bin:/bin"}
    result = _run(str(ROOT / "experiments" / "convergence.py"), "--list", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    listing = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert "ralston" in listing["samplers"] and "erf_ve" in listing["schedules"]
    assert "two_point" in listing["problems"] and "second_moment_error" in listing["metrics"]
