"""Every code path that makes a row is fingerprinted where it decides which units a change
affects, and every row records the versions of the libraries that computed it."""

import importlib.metadata
from pathlib import Path

import pytest

from sdebench.studies import provenance
from sdebench.studies.config import StudyConfig, resolve_sections, resolve_units
from sdebench.studies.convergence import run_study

ROOT = Path(__file__).resolve().parents[1]
RENDER_ONLY = ("reports", "experiments")
"""Folders whose code only parses arguments or renders stored frames."""

needs_k_diffusion = pytest.mark.peers("k-diffusion")
"""Skipped with the reason without k-diffusion, failed under SDEBENCH_REQUIRE_PEERS=1
(tests/peer_libraries.py)."""


def test_the_fingerprints_cover_every_source_file_that_computes():
    """peers/ and training/ used to be outside the fingerprint: editing them reused old rows."""
    covered = {path.resolve() for name in ("", *provenance.CORE_PACKAGES,
                                           *provenance.PATH_PACKAGES)
               for path in provenance.package_files(name)}
    sources = {path.resolve() for path in ROOT.glob("*/**/*.py")
               if path.relative_to(ROOT).parts[0] not in (*RENDER_ONLY, "tests", "benchmarks",
                                                          "examples", ".venv", ".ci")
               and "tests" not in path.relative_to(ROOT).parts
               and not path.relative_to(ROOT).parts[0].endswith(".egg-info")}
    assert sources and sources == covered


def test_every_row_records_the_versions_of_the_libraries_that_computed_it():
    """k-diffusion's version (and numpy's, torchsde's) used to be recorded in no row."""
    config = StudyConfig(schedules=["vp"], samplers=["euler"], steps=[8], dim=2, batch=8)
    rows = run_study(config, progress=False, trajectories=False).results
    for distribution in ("torch", "numpy", "diffusers", "k-diffusion", "torchsde"):
        column = f"{distribution.replace('-', '_')}_version"
        try:
            expected = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            expected = provenance.NOT_INSTALLED
        assert rows[column].eq(expected).all(), column


def _unit_ids(config):
    return {unit.sampler: unit.unit_id for unit in resolve_units(config, resolve_sections(config))}


def _edited(original, name):
    return lambda package: "edited" if package == name else original(package)


@needs_k_diffusion
def test_an_edit_in_peers_reruns_the_peer_units_and_no_other(monkeypatch):
    config = StudyConfig(schedules=["edm"], samplers=["euler", "kdiffusion.euler"], steps=[8],
                         dim=2, batch=8)
    before = _unit_ids(config)
    monkeypatch.setattr(provenance, "package_fingerprint",
                        _edited(provenance.package_fingerprint, "peers"))
    after = _unit_ids(config)
    assert after["euler"] == before["euler"]
    assert after["kdiffusion.euler"] != before["kdiffusion.euler"]


@needs_k_diffusion
def test_another_k_diffusion_version_reruns_the_peer_units_and_no_other(monkeypatch):
    config = StudyConfig(schedules=["edm"], samplers=["euler", "kdiffusion.euler"], steps=[8],
                         dim=2, batch=8)
    before = _unit_ids(config)
    original = provenance.library_versions
    monkeypatch.setattr(provenance, "library_versions", lambda *names: {
        **original(*names), **({"k_diffusion_version": "9.9"} if not names or "k-diffusion"
                               in names[0] else {})})
    after = _unit_ids(config)
    assert after["euler"] == before["euler"]
    assert after["kdiffusion.euler"] != before["kdiffusion.euler"]


def test_an_edit_in_the_core_or_another_numpy_reruns_everything(monkeypatch):
    config = StudyConfig(schedules=["vp"], samplers=["euler", "heun"], steps=[8], dim=2, batch=8)
    before = _unit_ids(config)
    monkeypatch.setattr(provenance, "code_fingerprint", lambda: "edited")
    edited = _unit_ids(config)
    monkeypatch.undo()
    original = provenance.library_versions
    monkeypatch.setattr(provenance, "library_versions",
                        lambda *names: {**original(*names), "numpy_version": "0.0"})
    numpy = _unit_ids(config)
    assert all(edited[s] != before[s] and numpy[s] != before[s] for s in before)


def test_a_training_network_carries_the_training_fingerprint(monkeypatch):
    """The network of a --model checkpoint is training/ code: its fingerprint is the unit's
    model_source, so an edit in training/ re-runs the learned-score units."""
    from sdebench.training import networks

    network = next(value for value in vars(networks).values() if isinstance(value, type)
                   and value.__module__ == networks.__name__)
    before = provenance.source_fingerprint(network)
    assert before == provenance.package_fingerprint("training")
    monkeypatch.setattr(provenance, "package_fingerprint",
                        _edited(provenance.package_fingerprint, "training"))
    assert provenance.source_fingerprint(network) == "edited" != before


def test_a_package_outside_the_paths_is_refused():
    with pytest.raises(ValueError, match="'reports' is not one of"):
        provenance.package_fingerprint("reports")
