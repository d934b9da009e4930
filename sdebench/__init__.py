"""sdebench: a numerical verification and benchmark suite for score-based generative models
written as SDEs.

The repository keeps its top-level folders (``theory/``, ``solvers/``, ``problems/``,
``studies/``, ``reports/``, ``experiments/``); setuptools maps them into this one namespace
(``sdebench.theory``, ``sdebench.solvers``, …), so nothing generic is installed at top level.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sdebench")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
