"""experiments/speed.py and experiments/peers.py run end to end at toy sizes (and
experiments/train.py's --device check, shared with them).

Timings themselves are checked by nothing here (speed targets belong to benchmarks and to the
experiments' own output); these tests keep the scripts from rotting and check their accounting:
NFE as each library spends it, noise draws, and the derived columns.
"""

import sys

import pytest

from sdebench.experiments import peers, speed, train
from sdebench.solvers.catalogue import get_solver
from sdebench.studies import timing
from sdebench.studies.provenance import row_provenance

TOY = ["--dim", "16", "--batch", "8", "--steps", "3", "--repeat", "1", "--quiet"]


def test_speed_table_accounts_nfe_noise_and_bandwidth():
    args = speed.build_parser().parse_args(
        [*TOY, "--samplers", "euler,heun,ancestral", "--copy-mb", "4", "--check-finite", "end"])
    table, header = speed.speed_table(args)
    rows = table.set_index("sampler")
    for name in ("euler", "heun", "ancestral"):  # VP's t_min > 0: no Heun step ends at σ = 0
        assert rows.loc[name, "nfe"] == 3 * get_solver(name).nfe_per_step
    assert rows.loc["ancestral", "noise_draws"] == 3 and rows.loc["euler", "noise_draws"] == 0
    assert bool(rows.loc["ancestral", "stochastic"]) and not bool(rows.loc["euler", "stochastic"])
    # samples/s and the lower-bound traffic follow from wall time: 2 × batch × d × 4 bytes × NFE
    for name, row in rows.iterrows():
        assert row["samples_per_s"] == pytest.approx(8 / row["wall_s"], rel=1e-12)
        assert row["min_traffic_GBps"] == pytest.approx(2 * 8 * 16 * 4 * row["nfe"]
                                                        / row["wall_s"] / 1e9, rel=1e-12), name
        assert 0 < row["fraction_of_peak"]
    assert "copy bandwidth" in header


def test_speed_table_puts_the_traffic_bound_beside_each_ratio():
    """Per step: the counted bytes (studies.traffic), their time at the state copy's bandwidth,
    and the bound NFE × floor + draws × draw + other bytes / bandwidth (studies.timing.step_bound).
    With one round every median is that round's value, so the ratio is wall / bound exactly."""
    args = speed.build_parser().parse_args(
        [*TOY, "--samplers", "euler,ancestral", "--copy-mb", "4", "--check-finite", "off",
         "--covariance", "diagonal", "--threads", "1"])
    table, header = speed.speed_table(args)
    state, steps = 8 * 16 * 4, 3
    floor, draw, bandwidth = (table.attrs[k] for k in ("floor_s", "draw_s", "state_copy_Bps"))
    rows = table.set_index("sampler")
    # euler: 8 states a step (tests/test_traffic.py); ancestral one more, its normal draw
    for name, passes, draws in (("euler", 8, 0), ("ancestral", None, 3)):
        row = rows.loc[name]
        assert row["passes"] == pytest.approx(row["step_MB"] * 1e6 / state, rel=1e-12)
        if passes is not None:
            assert row["passes"] == passes
        assert row["traffic_ms"] == pytest.approx(row["step_MB"] * 1e6 / bandwidth * 1e3, rel=1e-12)
        other_bytes = (row["step_MB"] * 1e6 - draws / steps * state) * steps
        bound = row["nfe"] * floor + draws * draw + other_bytes / bandwidth
        assert row["bound_ms"] == pytest.approx(bound / steps * 1e3, rel=1e-12), name
        assert row["bound_ratio"] == pytest.approx(row["step_ms"] / row["bound_ms"], rel=1e-12)
        assert row["step_ms"] == pytest.approx(row["wall_s"] / steps * 1e3, rel=1e-12)
    assert "bound_ratio = wall / (NFE × floor" in header


@pytest.fixture(scope="module")
def peers_run():
    """One toy run of peers.py's table, d = 256 so that the schedulers' 1000-entry tables stay
    below the state's size (2048 elements) and out of the traffic count, as at any real size."""
    return peers.peers_table(_peers_args("--dim", "256"))


@pytest.mark.peers
def test_peers_table_runs_every_scheduler_of_both_libraries(peers_run):
    table, _ = peers_run
    libraries = table["library"].str.split(" ").str[0]
    assert (libraries == "diffusers").sum() == len(peers.DIFFUSERS_SAMPLERS)
    sdebench = table[libraries == "sdebench"].set_index("sampler")
    assert len(sdebench) == len(peers.SDEBENCH_SAMPLERS) + 3  # + grid, tree and torchsde paths
    for name in peers.SDEBENCH_SAMPLERS:
        solver = get_solver(name)
        assert sdebench.loc[name, "stochastic"] == solver.stochastic
    diffusers = table[libraries == "diffusers"].set_index("sampler")
    for label, spec in peers.DIFFUSERS_SAMPLERS:  # the study's entries, as declared there
        assert diffusers.loc[label, "stochastic"] == get_solver(spec).stochastic
    assert (table["nfe"] >= 3).all() and (table["floor_ratio"] > 0).all()


@pytest.mark.peers
def test_peers_table_puts_the_traffic_bound_beside_every_library_s_ratio(peers_run):
    """Every row, sdebench's, k-diffusion's and diffusers', carries speed.py's traffic columns
    (studies.timing.bound_columns) with the bound NFE × floor + draws × draw + other bytes /
    bandwidth, its library's floor read back from floor_ratio = wall / (NFE × floor): each
    column follows from the others up to a few roundings (rel 1e-12; one round, so each median
    is that round's value). Draws are the run's
    noise bytes in states, whole numbers, one per step for the ancestral samplers."""
    table, header = peers_run
    state, steps = 8 * 256 * 4, 3
    for _, row in table.iterrows():
        name = f"{row['library']} {row['sampler']}"
        floor = row["wall_s"] / (row["nfe"] * row["floor_ratio"])
        draw, bandwidth = row["draw_ms"] / 1e3, row["copy_GBps"] * 1e9  # timed in its rounds
        moved = row["step_MB"] * 1e6 * steps
        assert row["noise_draws"] == int(row["noise_draws"]), name
        assert row["passes"] == pytest.approx(row["step_MB"] * 1e6 / state, rel=1e-12), name
        assert row["traffic_ms"] == pytest.approx(moved / steps / bandwidth * 1e3, rel=1e-12)
        bound = (row["nfe"] * floor + row["noise_draws"] * draw
                 + (moved - row["noise_draws"] * state) / bandwidth)
        assert row["bound_ms"] == pytest.approx(bound / steps * 1e3, rel=1e-12), name
        assert row["step_ms"] == pytest.approx(row["wall_s"] / steps * 1e3, rel=1e-12), name
        assert row["bound_ratio"] == pytest.approx(row["step_ms"] / row["bound_ms"], rel=1e-12)
        assert row["kernels"] > 0 and row["bound_ratio"] > 0, name
    rows = table.assign(library=table["library"].str.split(" ").str[0]).set_index(
        ["library", "sampler"])
    for key in [("sdebench", "ancestral"), ("k-diffusion", "euler_ancestral"),
                ("diffusers", "EulerAncestralDiscreteScheduler")]:
        assert rows.loc[key, "noise_draws"] == steps, key
    for key in [("sdebench", "ddim"), ("k-diffusion", "dpmpp_2m"), ("diffusers", "DDIMScheduler")]:
        assert rows.loc[key, "noise_draws"] == 0, key
    # k-diffusion's Euler step outside the model, in state passes (reads + writes):
    # eps = randn_like(x) * s_noise 1 + 2 (drawn though unused at s_churn = 0),
    # d = (x − D)/σ 3 + 2, x + d·dt 2 + 3: 13, with the model's own work excluded
    assert rows.loc[("k-diffusion", "euler"), "passes"] == 13
    assert rows.loc[("k-diffusion", "euler"), "noise_draws"] == steps
    assert "bound_ratio = wall / (NFE × floor" in header


def test_peers_without_the_peer_library_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    assert peers.main(TOY) == 2
    assert "pip install 'sdebench[peers]'" in capsys.readouterr().err


def _peers_args(*options: str):
    import argparse

    parser = argparse.ArgumentParser()
    speed.add_size_arguments(parser)
    return parser.parse_args([*TOY, *options])


@pytest.mark.skipif(sys.platform != "linux", reason="mallopt is glibc's (Linux only)")
def test_malloc_tuning_applies_on_linux():
    assert timing.tune_glibc_malloc().startswith("glibc malloc")


@pytest.mark.parametrize("bad", [["--repeat", "0"], ["--copy-mb", "0"], ["--dim", "-3"],
                                 ["--peak-gbps", "0"], ["--samplers", "euler,nope"],
                                 ["--device", "tpu"]], ids=" ".join)
def test_speed_validates_its_options(bad, capsys):
    """`--repeat 0` and `--copy-mb 0` used to end in ZeroDivisionError after minutes."""
    with pytest.raises(SystemExit) as exit_info:
        speed.main([*TOY, *bad])
    assert exit_info.value.code == 2 and "error" in capsys.readouterr().err


def test_speed_check_fails_when_a_sampler_is_over_target(monkeypatch, capsys):
    """`--check` turns "over target" into exit status 1 (it used to exit 0 regardless)."""
    import pandas as pd

    over = pd.DataFrame([{"sampler": "euler", "within_target": False, "spread": 1.0},
                         {"sampler": "heun", "within_target": True, "spread": 1.0}])
    monkeypatch.setattr(speed, "speed_table", lambda args: (over, "header"))
    assert speed.main([*TOY, "--check"]) == 1
    assert "over target: euler" in capsys.readouterr().err
    assert speed.main(TOY) == 0


def test_noisy_timings_are_flagged(monkeypatch, capsys):
    """Timings whose repetitions differ by more than 1.5× (or a floor that does) are flagged:
    ratios that swung ~100× in one table under load used to be printed without a word."""
    import pandas as pd

    noisy = pd.DataFrame([{"sampler": "euler", "within_target": True, "spread": 3.0}])
    noisy.attrs.update(floor_spread=2.0, floor_drift=1.3)
    monkeypatch.setattr(speed, "speed_table", lambda args: (noisy, "header"))
    speed.main(TOY)
    err = capsys.readouterr().err
    assert "timings of euler, the floor varied by more than" in err
    assert "the floor moved by 1.30x" in err


def test_timings_interleave_rounds_after_a_warm_up_round():
    """Each round calls every function once in turn (a load change falls on all alike); the
    first round is the untimed warm-up."""
    log = []
    calls = {name: (lambda name=name: log.append(name)) for name in ("floor", "a", "b")}
    times = timing.interleaved_timings(calls, "cpu", repeat=2)
    assert log == ["floor", "a", "b"] * 3
    assert {name: len(values) for name, values in times.items()} == {"floor": 2, "a": 2, "b": 2}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_repeat_coverage_is_the_rank_probability(n):
    """Enumerate every way to split the ranks 0..2n−1 of 2n exchangeable timings into this run
    and a repeat (each split equally likely): the share of splits whose repeat median lies in
    this run's [min, max] is the coverage — exactly for odd n, at least the bound for even n."""
    from itertools import combinations
    from statistics import median

    inside = total = 0
    for mine in combinations(range(2 * n), n):
        repeat = sorted(set(range(2 * n)) - set(mine))
        inside += min(mine) <= median(repeat) <= max(mine)
        total += 1
    share = inside / total
    if n % 2:
        assert share == pytest.approx(timing.repeat_coverage(n), abs=1e-12)
    else:
        assert share >= timing.repeat_coverage(n) - 1e-12


def test_speed_csv_records_the_run_configuration(tmp_path):
    import pandas as pd

    path = tmp_path / "speed.csv"
    assert speed.main([*TOY, "--samplers", "euler", "--copy-mb", "4", "--csv", str(path)]) == 0
    saved = pd.read_csv(path)
    assert list(saved.sampler) == ["euler"]
    row = saved.iloc[0]
    assert (row["dim"], row["batch"], row["steps"], row["repeat"]) == (16, 8, 3, 1)
    assert row["device"] == "cpu" and row["check_finite"] == "auto"
    assert row["repeat_coverage"] == 0.0  # one round: a repeat's single timing may fall anywhere
    assert {"sdebench_version", *row_provenance()} <= set(saved.columns)  # five libraries, commit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speed.csv"]  # atomic: no debris


@pytest.mark.parametrize("device, message", [
    ("tpu", "--device 'tpu' is not a device name: expected cpu, cuda or cuda:N"),
    ("mps", "--device 'mps' is not supported")])
@pytest.mark.parametrize("script", [speed, train], ids=["speed", "train"])
def test_a_bad_device_is_one_line(script, device, message, capsys):
    """--device goes through sdebench.devices.device_problem, as in the convergence CLI."""
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--device", device])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err.strip().splitlines()[-1], err


def test_an_unwritable_csv_folder_is_refused_before_timing(tmp_path, monkeypatch, capsys):
    """--csv into a folder that cannot be written used to fail after the whole run, with a
    traceback; now the run does not start."""
    monkeypatch.setattr(speed, "speed_table", lambda args: pytest.fail("the run started"))
    (tmp_path / "a_file").write_text("")
    for path, message in ((tmp_path / "a_file" / "speed.csv", "is a file, not a folder"),
                          (tmp_path, "is a directory: give a file path")):
        with pytest.raises(SystemExit) as exit_info:
            speed.main([*TOY, "--csv", str(path)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err.strip().splitlines()[-1], err
