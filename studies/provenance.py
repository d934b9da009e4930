"""What made a result: the code that computed it (package version, fingerprints of the source,
the versions of the libraries it ran, the git commit when there is one, the source of user
plugins) and stable identifiers of configurations, so that results are only ever reused for
exactly the configuration that made them.

Every code path that makes a row is fingerprinted, and the fingerprint goes where it decides
which units are affected by a change:

* the *core* (``sdebench/*.py``, theory/, solvers/, problems/ with the model adapters,
  studies/) and the versions of torch and numpy run in every unit: :func:`code_provenance`,
  part of every section's configuration, so an edit there re-runs everything;
* peers/ (with the versions of diffusers, k-diffusion and torchsde, which only the peers run)
  and training/ (the networks of ``--model`` checkpoints) run only in the units that use them:
  :func:`source_fingerprint` of a peer sampler or a training network carries their
  fingerprint, so an edit in peers/ re-runs the peer units and no other;
* a user's plugin: :func:`source_fingerprint`, a hash of its file.

:func:`library_versions` of all five libraries is recorded in every row besides.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import subprocess
from pathlib import Path

import sdebench

CORE_PACKAGES = ("theory", "solvers", "problems", "studies")
"""Subpackages whose code runs in every unit (reports and CLIs only render or parse)."""

PATH_PACKAGES = ("peers", "training")
"""Subpackages whose code runs only in the units that use one of their objects."""

CORE_LIBRARIES = ("torch", "numpy")
PEER_LIBRARIES = ("diffusers", "k-diffusion", "torchsde")
"""Distributions whose versions are recorded with every row; the core ones are part of every
unit's identity, the peer ones of peer units' (k-diffusion's sampling module runs torchsde's
Brownian tree)."""

DISPLAY_ONLY = ("sampler_index",)
"""Keys of a unit's configuration that order the display and are not part of its identity."""

NOT_INSTALLED = "not installed"


def digest(data, length: int = 12) -> str:
    """A short stable hash of JSON-serialisable ``data`` (keys sorted)."""
    text = json.dumps(data, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def unit_identifier(unit_config: dict) -> str:
    """The identifier of a unit: :func:`digest` (16 hex digits) of its configuration without
    the display-only keys (:data:`DISPLAY_ONLY`). A stored unit whose identifier is not that of
    its recorded configuration was edited by hand."""
    return digest({key: value for key, value in unit_config.items() if key not in DISPLAY_ONLY},
                  16)


def package_files(name: str) -> list[Path]:
    """The source files of subpackage ``sdebench.<name>`` (its tests excluded), or of the
    top-level ``sdebench`` modules for ``name=""``."""
    if not name:
        return sorted(Path(sdebench.__file__).parent.glob("*.py"))
    files = []
    for directory in importlib.import_module(f"sdebench.{name}").__path__:
        files += sorted(p for p in Path(directory).rglob("*.py") if "tests" not in p.parts)
    return files


def _files_digest(files: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in files:
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:12]


@functools.cache
def code_fingerprint() -> str:
    """Hash of the core source (``sdebench/*.py`` and :data:`CORE_PACKAGES`): any edit gives a
    new fingerprint, so a resumed study never mixes rows computed by different code."""
    return _files_digest([path for name in ("", *CORE_PACKAGES) for path in package_files(name)])


@functools.cache
def package_fingerprint(name: str) -> str:
    """Hash of the source of one of :data:`PATH_PACKAGES`."""
    if name not in PATH_PACKAGES:
        raise ValueError(f"package {name!r} is not one of {PATH_PACKAGES} (the core packages "
                         "are covered by code_fingerprint)")
    return _files_digest(package_files(name))


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


@functools.cache
def library_versions(distributions: tuple[str, ...] = CORE_LIBRARIES + PEER_LIBRARIES) -> dict:
    """``<name>_version`` → the installed version of each distribution (its metadata, so
    k-diffusion, whose package sdebench never imports, is read without importing it), or
    ``'not installed'``."""
    return {f"{name.replace('-', '_')}_version": _version(name) for name in distributions}


@functools.cache
def git_commit() -> str:
    """``git describe --always --dirty`` of the checkout holding sdebench ('' outside git)."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10, cwd=Path(sdebench.__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def source_fingerprint(obj) -> str:
    """What identifies the code of ``obj`` beyond :func:`code_provenance`: for a user's object
    (sampler, problem, metric, grid, network) a hash of the file that defines it; for an
    object of peers/ the fingerprint of peers/ with the versions of the libraries it runs
    (:data:`PEER_LIBRARIES`); for one of training/ the fingerprint of training/; '' for the
    core, which :func:`code_fingerprint` covers."""
    module = inspect.getmodule(obj if inspect.isclass(obj) or callable(obj) else type(obj))
    if module is None:
        return ""
    parts = module.__name__.split(".")
    if parts[0] == "sdebench":
        package = parts[1] if len(parts) > 1 else ""
        if package == "peers":
            return digest({"code": package_fingerprint(package),
                           **library_versions(PEER_LIBRARIES)})
        return package_fingerprint(package) if package in PATH_PACKAGES else ""
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(module)).read_bytes()).hexdigest()[:12]
    except (TypeError, OSError):
        return f"unhashable:{module.__name__}"


def code_provenance() -> dict:
    """The code identity of every section (hashed into its ``config_id``): sdebench's version,
    the core fingerprint and the versions of the core libraries. The git commit and the other
    libraries' versions are recorded with every row, not compared (:func:`row_provenance`)."""
    return {"sdebench_version": sdebench.__version__, "code": code_fingerprint(),
            **library_versions(CORE_LIBRARIES)}


def row_provenance() -> dict:
    """Recorded with every row: the versions of all five libraries (:func:`library_versions`)
    and the git commit."""
    return {**library_versions(), "git_commit": git_commit()}
