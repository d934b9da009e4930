"""``sdebench list``: every name a study may use, with its one-line description, in ≤ 120
columns; one catalogue on request."""

from sdebench.experiments.list import main


def test_every_catalogue_lists_its_names_with_a_description(capsys):
    assert main([]) == 0
    text = capsys.readouterr().out
    for heading in ("schedules:", "samplers:", "peers:", "problems:", "grids:", "metrics:"):
        assert heading in text
    for name in ("vp0snr", "unipc_bh2", "diffusers.FlowMatchEulerDiscreteScheduler", "gmm",
                 "auto", "agreement"):
        assert f"  {name} " in text, name
    assert max(map(len, text.splitlines())) <= 120


def test_one_catalogue(capsys):
    assert main(["schedules"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("schedules:") and "samplers:" not in text
