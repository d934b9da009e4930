"""A study resolves its sections once: the command line resolves them to check the study before it
runs and hands them to run_study, so a --model is imported and its weights hashed once per study
(they were twice per schedule: parse_args and run_study each resolved every section)."""

from __future__ import annotations

import collections

import pytest

import sdebench.studies.config as config_module
import sdebench.studies.convergence as convergence
from sdebench.experiments.convergence import main
from sdebench.studies.config import StudyConfig, resolve_sections
from sdebench.studies.convergence import run_study

MODEL = "examples/own_model.py:tiny_eps_mlp"
TWO_SCHEDULES = ("vp", "vp:beta_max=10")


@pytest.fixture
def calls(monkeypatch) -> collections.Counter:
    """Counts of the model loader, the weight hasher and the section resolver, wherever the
    study code calls them."""
    counts = collections.Counter()

    def counting(name, function):
        def counted(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return counted

    for name in ("load_model", "network_digest"):
        monkeypatch.setattr(config_module, name, counting(name, getattr(config_module, name)))
    resolve = counting("resolve_sections", config_module.resolve_sections)
    monkeypatch.setattr(config_module, "resolve_sections", resolve)
    monkeypatch.setattr(convergence, "resolve_sections", resolve)
    return counts


def test_the_command_line_loads_and_hashes_the_model_once_for_all_schedules(tmp_path, calls):
    status = main(["--model", MODEL, "--sde", ",".join(TWO_SCHEDULES), "--samplers", "euler",
                   "--steps", "4,8", "--batch", "4", "--no-report", "--quiet",
                   "--out", str(tmp_path / "study")])
    assert status in (0, 1)  # the verdicts of two step counts do not matter here
    assert calls == {"load_model": 1, "network_digest": 1, "resolve_sections": 1}


def test_run_study_alone_resolves_once_and_refuses_sections_of_another_configuration(calls):
    config = StudyConfig(schedules=TWO_SCHEDULES, samplers=("euler",), steps=(4, 8), batch=4,
                         model=MODEL)
    study = run_study(config, progress=False, trajectories=False)
    assert set(study.results.schedule) == set(TWO_SCHEDULES)
    assert calls == {"load_model": 1, "network_digest": 1, "resolve_sections": 1}
    other = StudyConfig(schedules=TWO_SCHEDULES, samplers=("euler",), steps=(4, 8), batch=4,
                        model=MODEL, seed=1)
    with pytest.raises(ValueError, match="not resolved from this study's configuration"):
        run_study(other, sections=resolve_sections(config), progress=False, trajectories=False)
