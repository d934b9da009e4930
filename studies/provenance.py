"""What made a result: the code that computed it (package version, a fingerprint of the source,
the git commit when there is one, the source of user plugins) and stable identifiers of
configurations, so that results are only ever reused for exactly the configuration that made
them."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import subprocess
from pathlib import Path

import torch

import sdebench

_NUMERIC_PACKAGES = ("theory", "solvers", "problems", "studies")
"""Subpackages whose code produces numbers (reports and CLIs only render or parse)."""


def digest(data, length: int = 12) -> str:
    """A short stable hash of JSON-serialisable ``data`` (keys sorted)."""
    text = json.dumps(data, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _package_files() -> list[Path]:
    import importlib

    files = sorted(Path(sdebench.__file__).parent.glob("*.py"))
    for name in _NUMERIC_PACKAGES:
        for directory in importlib.import_module(f"sdebench.{name}").__path__:
            files += sorted(p for p in Path(directory).rglob("*.py") if "tests" not in p.parts)
    return files


@functools.cache
def code_fingerprint() -> str:
    """Hash of the source files of the numeric subpackages: any edit gives a new fingerprint,
    so a resumed study never mixes rows computed by different code."""
    sha = hashlib.sha256()
    for path in _package_files():
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:12]


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
    """For code outside sdebench (a user's sampler, problem, metric, grid): a hash of the file
    that defines it ('' for sdebench's own code, covered by :func:`code_fingerprint`)."""
    module = inspect.getmodule(obj if inspect.isclass(obj) or callable(obj) else type(obj))
    if module is None or module.__name__.split(".")[0] == "sdebench":
        return ""
    try:
        return hashlib.sha256(Path(inspect.getsourcefile(module)).read_bytes()).hexdigest()[:12]
    except (TypeError, OSError):
        return f"unhashable:{module.__name__}"


def code_provenance() -> dict:
    """The code identity recorded with every row (the git commit is recorded, not compared)."""
    return {"sdebench_version": sdebench.__version__, "code": code_fingerprint(),
            "torch_version": torch.__version__}
