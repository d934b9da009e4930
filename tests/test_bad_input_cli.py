"""Bad command lines of ``experiments/convergence.py``: each gets exit status 2 and one line that
names the bad value (and, for a mistyped name, the closest known one), never a traceback, and
nothing is run or written. Ctrl-C exits with 130 and one line saying what was kept.

Each row is the argv (``{tmp}`` is the test's directory, ``{model}`` a runnable --model) and a
fragment of the expected error line. The rows run ``main(argv)`` in this process; a row the
CLI wrongly accepts fails at once (``run_study`` is replaced by a function that raises).
"""

import importlib

import pytest
import torch

import sdebench.cli
import sdebench.experiments.report as report
import sdebench.studies.convergence as study_module
from sdebench.experiments import convergence
from tests.test_studies import OWN_MODEL

NO_CUDA = not torch.cuda.is_available()
ROWS = [
    # --sde: names, parameters and their types and ranges
    (["--sde", "vpp"], "unknown schedule 'vpp' (did you mean 'vp'?)"),
    (["--sde", "vp,nope"], "unknown schedule 'nope'"),
    (["--sde", ""], "--schedule: expected at least one name, got ''"),
    (["--sde", "vp:beta_max=x"], "beta_max must be a number, got 'x'"),
    (["--sde", "vp:beta_max=-1"], "schedule 'vp:beta_max=-1': beta_max must be a finite number > 0"),
    (["--sde", "vp:beta_min=-0.1"], "beta_min must be a finite number >= 0, got -1/10"),
    (["--sde", "vp:beta_max=nan"], "beta_max must be a finite real number, got nan"),
    (["--sde", "vp:beta_max"], "'beta_max' is not a key=value parameter"),
    (["--sde", "vp:beta_mx=10"], "takes no parameter 'beta_mx' (did you mean 'beta_max'?)"),
    (["--sde", "vp:t_min=2"], "empty time range [t_min, t_max] = [2, 1]"),
    (["--sde", "ve:sigma_min=0"], "schedule 've:sigma_min=0': sigma_min must be a finite number > 0"),
    (["--sde", "ve:sigma_max=True"], "sigma_max must be a number, got True"),
    (["--sde", "edm:sigma_max=0.001"], "sigma_max must be a finite number > 0.002, got 1/1000"),
    (["--sde", "edm:rho=abc"], "schedule 'edm' takes no parameter 'rho'"),
    (["--sde", "edm:sigma_min=0"], "and 0 at t_min (λ = -4.38203, inf): use --grid edm"),
    (["--sde", "edm:sigma_min=0", "--grid", "edm", "--samplers", "heun,dpmpp_2m"],
     "ends where sigma = 0, and dpmpp_2m divide by sigma(t_next)"),
    (["--sde", "vp_cosine:offset=abc"], "offset must be a number, got 'abc'"),
    (["--sde", "vp:beta_max=1:beta_max=2"], "sets 'beta_max' twice"),
    (["--sde", "sdebench.theory.catalogue:edn"], "has no attribute 'edn' (did you mean 'edm'?)"),
    # --budgets: positive integers
    (["--budgets", "10,x"], "--budgets: expected comma-separated positive integers (NFE), e.g. "
                            "10,20,50, got '10,x'"),
    (["--budgets", "0,20"], "got '0,20'"),
    # --samplers
    (["--samplers", "eulr"], "unknown sampler 'eulr' (did you mean 'euler'?)"),
    (["--samplers", ",,"], "--samplers: expected at least one name, got ',,'"),
    (["--samplers", "heun:foo=abc"], "sampler 'heun' takes no parameter 'foo'; it takes none"),
    (["--samplers", "ddim:eat=0.5"], "takes no parameter 'eat' (did you mean 'eta'?)"),
    (["--samplers", "ddim:eta=abc"], "sampler 'ddim': eta must be a number, got 'abc'"),
    (["--samplers", "ddim:eta=True"], "sampler 'ddim': eta must be a number, got True"),
    (["--samplers", "ddim:eta=2"], "sampler 'ddim:eta=2': eta must be in [0, 1], got 2"),
    (["--samplers", "edm_stochastic:s_churn=-5"], "s_churn must be a finite number >= 0, got -5"),
    (["--samplers", "edm_stochastic:s_churn=nan"], "s_churn must be a finite number >= 0, got nan"),
    (["--samplers", "edm_stochastic:s_noise=abc"], "s_noise must be a number, got 'abc'"),
    (["--samplers", "edm_stochastic:s_min=1:s_max=0.5"], "s_max must be a finite number >= 1, got 0.5"),
    (["--samplers", "edm_stochastic:s_max=abc"], "s_max must be a number or None, got 'abc'"),
    (["--samplers", "pc:snr=abc"], "sampler 'pc': snr must be a number, got 'abc'"),
    (["--samplers", "pc:n_corrector=0.5"], "n_corrector must be an integer, got 0.5"),
    (["--samplers", "pc:n_corrector=inf"], "n_corrector must be an integer, got inf"),
    (["--samplers", "pc:snr=0"], "snr must be a finite number > 0, got 0"),
    (["--samplers", "annealed_langevin:step_ratio=2"], "step_ratio must be a finite number in (0, 2)"),
    (["--samplers", "annealed_langevin:n_steps=abc"], "n_steps must be an integer, got 'abc'"),
    (["--samplers", "rk45:rtol=0"], "rtol must be a finite number > 0, got 0"),
    (["--samplers", "euler_maruyama:noise_scale=inf"], "noise_scale must be a finite number >= 0"),
    (["--samplers", "no_such_module:Solver"], "cannot import module 'no_such_module'"),
    # --steps, --grid, --problem, --metrics, --reference
    (["--steps", "abc"], "--steps must be comma-separated integers, got 'abc'"),
    (["--steps", ""], "--steps: expected at least one step count, got ''"),
    (["--steps", "4.5"], "--steps must be comma-separated integers, got '4.5'"),
    (["--steps", "0,4"], "steps must be integers in [1, 1048576], got 0"),
    (["--steps", "2097152"], "steps must be integers in [1, 1048576], got 2097152"),
    (["--grid", "logsrn"], "unknown grid 'logsrn' (did you mean 'logsnr'?)"),
    (["--grid", "edm:rho=abc"], "grid 'edm': rho must be a number, got 'abc'"),
    (["--grid", "edm:rho=-1"], "grid 'edm:rho=-1': rho must be a finite number > 0, got -1"),
    (["--grid", "edm:rho=inf"], "rho must be a finite number > 0, got inf"),
    (["--grid", "uniform:steps=3"], "steps is set by the study"),
    (["--problem", "gausian"], "unknown problem 'gausian' (did you mean 'gaussian'?)"),
    (["--problem", "gaussian:condition=abc"], "condition must be a number, got 'abc'"),
    (["--problem", "gaussian:condition=0.5"], "condition must be a finite number >= 1, got 0.5"),
    (["--problem", "gaussian:condition=inf"], "condition must be a finite number >= 1, got inf"),
    (["--problem", "gaussian:dim=3"], "dim is set by the study"),
    (["--problem", "gmm:components=abc"], "components must be an integer, got 'abc'"),
    (["--problem", "gmm:components=0"], "problem 'gmm:components=0': components must be an "
                                         "integer >= 1, got 0"),
    (["--problem", "gmm:std=0"], "problem 'gmm:std=0': std must be a finite number > 0, got 0"),
    (["--problem", "gmm:std=nan"], "std must be a finite number > 0, got nan"),
    (["--problem", "gmm:radius=inf"], "problem 'gmm:radius=inf': radius must be a finite number, "
                                      "got inf"),
    (["--problem", "checkerboard"], "problem 'checkerboard' needs dim in (2,), got 4"),
    (["--metrics", "sliced_w3"], "unknown metric 'sliced_w3' (did you mean 'sliced_w2'?)"),
    (["--problem", "gmm", "--metrics", "w2"], "metric 'w2' needs a problem that answers"),
    (["--samplers", "heun", "--metrics", "strong_error"], "no requested metric applies"),
    (["--reference", "rk@64"], "unknown sampler 'rk' (did you mean 'rk4'?)"),
    (["--reference", "euler_maruyama"], "reference solver 'euler_maruyama' is stochastic"),
    (["--reference", "rk4@7"], "reference steps must be an even integer >= 2"),
    # sizes, precision, device, seed
    (["--dim", "0"], "dim must be an integer >= 1, got 0"),
    (["--dim", "abc"], "argument --dim: invalid int value: 'abc'"),
    (["--batch", "1"], "batch must be an integer >= 2, got 1"),
    (["--timing-repeats", "0"], "timing_repeats must be an integer >= 1, got 0"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--device", "tpu"], "--device 'tpu' is not a device name: expected cpu, cuda or cuda:N"),
    (["--device", "cuda:abc"], "--device 'cuda:abc' is not a device name"),
    (["--device", "mps"], "--device 'mps' is not supported"),
    (["--device", "cuda" if NO_CUDA else "cuda:99"],
     "no CUDA device is available" if NO_CUDA else "--device 'cuda:99': this machine has"),
    (["--seed", "-1"], "seed must be an integer >= 0 and < 2**64, got -1"),
    (["--seed", str(2**64)], f"got {2**64}"),
    (["--workers", "-1"], "--workers takes a count >= 1"),
    # unknown options, output, plugins, models
    (["--sampelrs", "euler"], "unrecognized argument '--sampelrs' (did you mean '--samplers'?)"),
    (["--out", ""], "the output directory is empty"),
    (["--out", "{tmp}/a_file"], "a_file is a file, not a directory"),
    (["--plugin", "no_such_plugin"], "cannot import module 'no_such_plugin'"),
    (["--plugin", "{tmp}/missing.py"], "missing.py' does not exist"),
    (["--plugin", "{tmp}/syntax_error.py"], "syntax_error.py, line 1: invalid syntax"),
    (["--plugin", "{tmp}/raises.py"], "it raised RuntimeError at {tmp}/raises.py, line 1: boom"),
    (["--model", "no_such_module:factory"], "cannot import module 'no_such_module'"),
    (["--model", "{tmp}/missing.pt"], "missing.pt' does not exist"),
    (["--model", "{model}", "--shape", "3,x"], "--shape must be comma-separated integers, got '3,x'"),
    (["--model", "{model}", "--shape", "0,3"], "(0, 3)"),  # the wording is problems.adapters'
    (["--model", "{model}", "--prediction", "foo"], "argument --prediction: invalid choice: 'foo'"),
    (["--prediction", "eps"], "give model too"),
]


class Accepted(Exception):
    """Raised in place of running the study: the row's bad input got through."""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "syntax_error.py").write_text("def broken(:\n    pass\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _main(argv, capsys) -> tuple[int, str]:
    """Exit status and stderr of ``convergence.main(argv)``; any exception but SystemExit (a
    traceback for the user) fails the test."""
    try:
        status = convergence.main(argv, prog="convergence.py")
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "fragment"), ROWS, ids=[" ".join(argv) for argv, _ in ROWS])
def test_bad_command_line_gets_one_clear_line(argv, fragment, workdir, monkeypatch, capsys):
    def accepted(*args, **kwargs):
        raise Accepted(f"{argv} was accepted")

    monkeypatch.setattr(study_module, "run_study", accepted)
    fill = {"tmp": str(workdir), "model": OWN_MODEL}
    out = workdir / "out"
    status, err = _main(["--out", str(out), "--quiet", "--no-report",
                         *(arg.format(**fill) for arg in argv)], capsys)
    assert status == 2, err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("convergence.py: error: ") and fragment.format(**fill) in message, err
    assert not (out / "units").exists()


def test_the_table_covers_every_option():
    """At least 40 rows, and each option of --help has one (all but the flags --list, --quiet,
    --verbose, --no-report, --compile, and --scheduler, which needs a dask cluster)."""
    parser = convergence.build_parser()
    options = {action.option_strings[-1] for action in parser._actions if action.option_strings}
    untested = {"-h", "--help", "--list", "--quiet", "--verbose", "--no-report", "--compile",
                "--scheduler"}
    covered = {arg for argv, _ in ROWS for arg in argv if arg.startswith("--")}
    assert len(ROWS) >= 40
    assert options - untested <= covered | {"--sde"}, options - untested - covered


def test_ctrl_c_while_starting_exits_130_in_one_line(monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(convergence, "parse_args", interrupt)
    status, err = _main(["--samplers", "euler"], capsys)
    assert status == 130 and err.strip() == ("convergence.py: interrupted while starting, before "
                                             "any unit ran (nothing is stored); run the command "
                                             "again")
    monkeypatch.setattr(importlib, "import_module", interrupt)
    assert sdebench.cli.main(["convergence"]) == 130
    assert "sdebench convergence: interrupted while starting" in capsys.readouterr().err


def test_ctrl_c_during_the_report_keeps_the_study_and_says_how_to_render_it(workdir, monkeypatch,
                                                                           capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render_directory", interrupt)
    out = workdir / "out"
    status, err = _main(["--samplers", "euler", "--steps", "4", "--dim", "1", "--batch", "2",
                         "--quiet", "--out", str(out)], capsys)
    assert status == 130 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"convergence.py: interrupted after the study, before its report was written: every unit "
        f"is stored in {out}; write the report with: sdebench report {out}"]
    assert len(list((out / "units").iterdir())) == 1
    assert report.main([str(out)], prog="sdebench report") == 130
    assert "no report was written and the study in" in capsys.readouterr().err


def test_a_report_that_cannot_be_written_is_one_line_and_keeps_the_study(workdir, monkeypatch,
                                                                         capsys):
    """A StoreError while the report is rendered (a full disk, no permission) is one line and
    exit status 2, not a traceback; the study's units stay stored."""
    from sdebench.studies.store import StoreError

    def unwritable(directory, *args, **kwargs):
        raise StoreError(f"cannot write {directory}/report.html: No space left on device (the "
                         "disk is full: free space or write elsewhere); everything stored before "
                         "is kept")

    monkeypatch.setattr(report, "render_directory", unwritable)
    out = workdir / "out"
    status, err = _main(["--samplers", "euler", "--steps", "4", "--dim", "1", "--batch", "2",
                         "--quiet", "--out", str(out)], capsys)
    assert status == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"convergence.py: error: cannot write {out}/report.html: No space left on device (the "
        "disk is full: free space or write elsewhere); everything stored before is kept"]
    assert len(list((out / "units").iterdir())) == 1
