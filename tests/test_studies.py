"""The convergence study: tidy rows with their full configuration, resume, failures, the CLI."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import sdebench.studies.convergence as convergence
from sdebench.solvers.solver import Solver
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def _config(**kwargs):
    defaults = dict(schedules=["vp"], samplers=["euler", "euler_maruyama"], steps=[16, 32, 64],
                    dim=2, batch=16)
    return StudyConfig(**{**defaults, **kwargs})


def test_study_rows_are_tidy_and_carry_their_full_configuration():
    result = run_study(_config(), progress=False, trajectories=False)
    frame = result.results
    configuration = {"schedule", "schedule_params", "schedule_definition", "problem",
                     "problem_params", "dim", "batch", "grid", "grid_params", "dtype", "device",
                     "seed", "sampler", "sampler_params", "sampler_class", "steps",
                     "sdebench_version", "code", "torch_version", "git_commit", "config_id",
                     "unit_id"}
    measurement = {"metric", "value", "stderr", "floor", "nfe", "step_size", "wall_time", "status"}
    assert configuration | measurement <= set(frame.columns)
    assert set(frame.metric) == {"w2", "kl", "strong_error"}  # Monte Carlo metrics: exact law here
    assert (frame[frame.sampler == "euler"].metric != "strong_error").all()
    assert json.loads(frame.schedule_params.iloc[0])["beta_max"] == "20"
    assert frame.dim.eq(2).all() and frame.batch.eq(16).all() and frame.status.eq("ok").all()
    assert set(result.orders.sampler) == {"euler", "euler_maruyama"}


def test_duplicate_samplers_run_and_fit_once():
    """`heun,heun` used to be computed and fitted twice (CI 0.000)."""
    config = _config(samplers=["heun", "heun", "euler"])
    assert config.samplers == ("heun", "euler")
    orders = run_study(config, progress=False, trajectories=False).orders
    assert (orders[orders.metric == "w2"].sampler.value_counts() == 1).all()


def test_resume_neither_recomputes_nor_duplicates(tmp_path, monkeypatch, capsys):
    """Adding a step count runs only the new units — except pathwise ones (strong error): all
    step counts of a study share one Brownian path on the union of their grids, so a new step
    count is a new path, and their rows are recomputed rather than mixed across paths. A
    resumed study says how many units it reused."""
    run_study(_config(steps=[16, 32]), ResultStore(tmp_path), progress=False, trajectories=False)
    calls = []
    original = convergence.run_unit
    monkeypatch.setattr(convergence, "run_unit", lambda config, unit: calls.append(
        (unit.sampler, unit.steps)) or original(config, unit))
    resumed = run_study(_config(steps=[16, 32, 64]), ResultStore(tmp_path), progress=False,
                        trajectories=False)
    assert sorted(calls) == [("euler", 64), ("euler_maruyama", 16), ("euler_maruyama", 32),
                             ("euler_maruyama", 64)]
    assert resumed.results.unit_id.nunique() == 6
    assert len(resumed.results) == len(resumed.results.drop_duplicates(["sampler", "steps", "metric"]))
    calls.clear()
    again = run_study(_config(steps=[16, 32, 64]), ResultStore(tmp_path), progress=True,
                      trajectories=False)
    assert calls == [] and again.results.equals(resumed.results)
    assert f"reused 6 of 6 units stored in {tmp_path}, running 0" in capsys.readouterr().err
    # orders.csv, compacted from every stored unit, fits each Brownian path apart: the old
    # path's strong errors at 16 and 32 steps are not mixed into the new path's fit (they were:
    # two values at each step count in one fit)
    view = pd.read_csv(tmp_path / "orders.csv", keep_default_na=False, na_values=[""])
    strong = view[(view.sampler == "euler_maruyama") & (view.metric == "strong_error")]
    assert sorted(strong.fit_steps) == ["16-32", "16-64"], strong[["fit_steps", "points"]]


def test_a_different_configuration_in_the_same_store_is_computed_and_kept_apart(tmp_path):
    """`--dim 4` then `--dim 5` in one --out used to compute nothing and print the dim-4 table."""
    store = ResultStore(tmp_path)
    small = run_study(_config(samplers=["heun"], dim=4), store, progress=False, trajectories=False)
    large = run_study(_config(samplers=["heun"], dim=5), store, progress=False, trajectories=False)
    assert small.results.dim.eq(4).all() and large.results.dim.eq(5).all()
    assert set(small.results.config_id).isdisjoint(large.results.config_id)
    assert not (small.results.value.to_numpy() == large.results.value.to_numpy()).all()
    results, _ = ResultStore(tmp_path).frames()
    assert sorted(results.dim.unique()) == [4, 5] and len(results) == 2 * len(small.results)


@pytest.mark.parametrize("change", [{"batch": 32}, {"seed": 1}, {"grid": "edm"},
                                    {"grid": "edm:rho=5"}, {"schedules": ["vp:beta_max=12"]},
                                    {"samplers": ["ddim:eta=0.5"]}, {"problem": "gaussian:condition=10"},
                                    {"dtype": "float32"}])
def test_every_setting_is_part_of_the_resume_key(tmp_path, change):
    store = ResultStore(tmp_path)
    base = _config(samplers=["ddim"], steps=[8])
    first = run_study(base, store, progress=False, trajectories=False)
    second = run_study(_config(**{**dict(samplers=["ddim"], steps=[8]), **change}), store,
                       progress=False, trajectories=False)
    assert set(first.results.unit_id).isdisjoint(second.results.unit_id), change


def test_gmm_study_reports_the_monte_carlo_floor():
    frame = run_study(_config(problem="gmm", samplers=["heun"], steps=[8, 16], batch=512),
                      progress=False, trajectories=False).results
    assert {"nll", "sliced_w2"} <= set(frame.metric)
    assert frame[frame.metric == "nll"].stderr.gt(0).all()
    assert frame[frame.metric == "nll"].reference.notna().all()
    assert frame[frame.metric == "sliced_w2"].floor.gt(0).all()


class NaNSolver(Solver):
    """A sampler whose state turns NaN at its second step (it never touches the model's output)."""

    order, strong_order, nfe_per_step, stochastic = 1, None, 1, False

    def step(self, ctx, x, t_cur, t_next, state):
        ctx.denoise(x, t_cur)
        return (x * math.nan if ctx.step_index == 1 else x), state


class BrokenSolver(Solver):
    order, strong_order, nfe_per_step, stochastic = 1, None, 1, False

    def step(self, ctx, x, t_cur, t_next, state):
        raise RuntimeError("this sampler has a bug")


def test_diverging_and_failing_units_are_recorded_and_the_study_goes_on(tmp_path):
    config = _config(samplers=["tests.test_studies:NaNSolver", "tests.test_studies:BrokenSolver",
                               "euler"], steps=[4, 8])
    result = run_study(config, ResultStore(tmp_path), progress=False, trajectories=False)
    frame = result.results.drop_duplicates(["sampler", "steps"]).set_index("sampler")
    nan_rows = result.results[result.results.sampler.str.endswith("NaNSolver")]
    assert nan_rows.status.eq("diverged").all() and nan_rows.value.eq(math.inf).all()
    assert "state became NaN/Inf at step 1" in nan_rows.error.iloc[0]
    assert frame.loc["tests.test_studies:BrokenSolver"].status.eq("failed").all()
    assert "this sampler has a bug" in frame.loc["tests.test_studies:BrokenSolver"].error.iloc[0]
    assert result.results[result.results.sampler == "euler"].status.eq("ok").all()
    store = ResultStore(tmp_path)
    assert len(store.completed()) == 4  # diverged is an outcome; failed units run again


OWN_MODEL = str(ROOT / "examples" / "own_model.py") + ":tiny_eps_mlp"


def _cli(*args, cwd, script="convergence.py"):
    return subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


BAD_ARGUMENTS = [["--sde", "nope"], ["--samplers", "euler,nope"], ["--steps", "0,4"],
                 ["--steps", "a"], ["--steps", "2000000"], ["--dim", "0"], ["--batch", "1"],
                 ["--device", "tpu"], ["--seed", "-1"], ["--seed", str(2**64)],
                 ["--sde", "vp:beta_max=nan"],
                 ["--samplers", "heun:bogus=1"], ["--problem", "gmm", "--metrics", "w2"],
                 ["--grid", "edm:rho=-1"], ["--plugin", "no_such_module"],
                 ["--samplers", "heun", "--metrics", "strong_error"],
                 ["--model", OWN_MODEL, "--problem", "gmm"], ["--model", OWN_MODEL, "--shape", "3,x"],
                 ["--model", "no_such_module:factory"], ["--model", OWN_MODEL[:-len("mlp")]],
                 ["--prediction", "eps"], ["--reference", "euler_maruyama"],
                 ["--reference", "rk4@7"]]
if not torch.cuda.is_available():
    BAD_ARGUMENTS.append(["--device", "cuda"])


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=" ".join)
def test_cli_rejects_bad_arguments_without_writing(tmp_path, args, capsys, monkeypatch):
    """In this process (a subprocess per case cost ~12 s of start-up each on 2 cores); the
    script's own exit status is checked once, below."""
    from sdebench.experiments.convergence import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and "error" in stderr, stderr[-500:]
    assert not (tmp_path / "out" / "units").exists()


def test_cli_script_exits_2_on_a_bad_argument(tmp_path):
    result = _cli("--sde", "nope", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and "error" in result.stderr, result.stderr[-500:]
    assert not (tmp_path / "out" / "units").exists()


def test_cli_names_the_bad_schedule_parameter(tmp_path):
    result = _cli("--sde", "vp:beta_max=nan", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "beta_max must be a finite real number" in result.stderr


@pytest.mark.parametrize("out", ["", "results.csv"])
def test_cli_rejects_an_empty_or_file_output(tmp_path, out):
    (tmp_path / "results.csv").write_text("precious\n")
    result = _cli("--samplers", "euler", "--steps", "4", "--out", out, cwd=tmp_path)
    assert result.returncode == 2
    assert (tmp_path / "results.csv").read_text() == "precious\n"


def test_cli_refuses_an_unwritable_output_before_running(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = _cli("--samplers", "euler", "--steps", "4", "--out", str(tmp_path / "a_file" / "x"),
                  cwd=tmp_path)
    assert result.returncode == 2 and "cannot write" in result.stderr


def test_cli_accepts_output_names_with_dots_and_runs(tmp_path):
    out = tmp_path / "results" / "v1.2"
    result = _cli("--sde", "ve", "--samplers", "heun,ddim", "--steps", "8,16,32", "--quiet",
                  "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout and (out / "results.csv").exists()
    assert "report:" in result.stdout and (out / "report.html").exists()


def test_cli_default_outputs_differ_per_command(tmp_path):
    """The README's example commands each get a directory of their own."""
    base = ["--samplers", "euler", "--steps", "4,8", "--quiet", "--no-report"]
    first = _cli(*base, cwd=tmp_path)
    second = _cli(*base, "--dim", "3", cwd=tmp_path)
    directories = [line.split()[1] for r in (first, second) for line in r.stdout.splitlines()
                   if line.startswith("results:")]
    assert first.returncode == second.returncode == 0
    assert len(set(directories)) == 2 and all(d.startswith("results/convergence/") for d in directories)


def test_cli_exit_status_reports_failed_units(tmp_path):
    result = _cli("--samplers", "tests.test_studies:BrokenSolver", "--steps", "4", "--quiet",
                  "--no-report", "--out", str(tmp_path / "out"), cwd=ROOT)
    assert result.returncode == 1 and "FAILED" in result.stderr


def test_schedule_parameters_reach_the_study(tmp_path):
    result = _cli("--sde", "vp:beta_max=10", "--samplers", "heun", "--steps", "8,16", "--quiet",
                  "--no-report", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(rows.schedule) == {"vp:beta_max=10"}
    assert json.loads(rows.schedule_params.iloc[0])["beta_max"] == "10"


def test_all_samplers_leave_the_peers_to_their_own_group(tmp_path):
    """`--samplers all` (the default) used to include every peer sampler, so on an install
    without diffusers the README's first command stopped at "diffusers is not installed"; the
    peers have their own group name, `peers` (tests/test_peers.py runs it)."""
    from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, sampler_groups

    groups = sampler_groups()
    assert set(BUILTIN_SAMPLERS) <= set(groups["all"])
    assert groups["peers"] and all(n.startswith(("kdiffusion.", "diffusers."))
                                   for n in groups["peers"])
    assert not set(groups["all"]) & set(groups["peers"])
    code = ("import importlib.util, sys; real = importlib.util.find_spec;"
            "importlib.util.find_spec = lambda n, *a: None if n in ('diffusers', 'k_diffusion')"
            " else real(n, *a); sys.modules['diffusers'] = None;"
            "from sdebench.experiments.convergence import parse_args;"
            f"_, config, _ = parse_args(['--sde', 'vp', '--out', {str(tmp_path / 'a')!r}]);"
            "print(len(config.samplers))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(groups["all"])


def test_an_older_implementations_rows_are_read_apart_from_the_current_ones():
    """A store re-run after a sampler's code changed holds its old units beside the new ones
    (same steps, another sampler_source). The order fits kept them apart, but the errors at the
    NFE budgets and the answer read one curve through both (at a run's NFE, whichever row came
    first). Now each implementation is a sampler of its own, named for its code; the current
    one reads exactly what it reads alone, the old one (errors 4× larger here) 4× that: a
    log-log line through values scaled by 4 is the line scaled by 4, to round-off."""
    from sdebench.studies.analysis import analyse

    results = run_study(_config(samplers=["euler"], steps=[8, 16, 32, 64]), progress=False,
                        trajectories=False).results
    current = results.assign(sampler_source="c0ffee0123ab")
    old = current.assign(sampler_source="0bad5eed0123", unit_id=current.unit_id + "-old",
                         value=4 * current.value)
    alone = analyse(current)
    both = analyse(pd.concat([old, current], ignore_index=True))
    names = {"euler [code c0ffee01]", "euler [code 0bad5eed]"}
    assert set(both.answer.sampler) == names and set(both.orders.sampler) == names
    errors = both.at_nfe.set_index(["sampler", "metric", "nfe"]).value
    for row in alone.at_nfe.itertuples():
        assert errors[("euler [code c0ffee01]", row.metric, row.nfe)] == pytest.approx(
            row.value, rel=1e-12, nan_ok=True)
        assert errors[("euler [code 0bad5eed]", row.metric, row.nfe)] == pytest.approx(
            4 * row.value, rel=1e-12, nan_ok=True)
    fitted = both.answer.set_index("sampler").measured_order
    assert fitted["euler [code c0ffee01]"] == alone.answer.measured_order.iloc[0]
