"""The optional peer libraries (diffusers, k-diffusion) in the tests: one rule for all of them.

A test that needs a peer carries the ``peers`` marker: ``@pytest.mark.peers`` (both libraries) or
``@pytest.mark.peers("k-diffusion")`` / ``("diffusers")``. Where the library is missing,
tests/conftest.py skips the test with the reason and the install command (the README's test
command installs no k-diffusion) — except under SDEBENCH_REQUIRE_PEERS=1, as in CI's second
pytest run (``.ci/run``, which installs k-diffusion), where a missing peer fails the test.
"""

from __future__ import annotations

import functools
import os

PEERS = ("diffusers", "k-diffusion")
INSTALL = "pip install 'sdebench[peers]' && pip install --no-deps k-diffusion"


@functools.cache
def _missing(name: str) -> str:
    from sdebench.peers.base import PeerUnavailable

    try:
        if name == "diffusers":
            import diffusers  # noqa: F401
        elif name == "k-diffusion":
            from sdebench.peers.kdiffusion import sampling_module

            sampling_module()
        else:
            raise ValueError(f"unknown peer library {name!r}: one of {PEERS}")
    except (ImportError, PeerUnavailable) as error:
        return str(error)
    return ""


def missing_peers(*names: str) -> str:
    """'' when every named peer library (default: both) loads, else why not, one per library."""
    return "; ".join(reason for reason in map(_missing, names or PEERS) if reason)


def peers_required() -> bool:
    return os.environ.get("SDEBENCH_REQUIRE_PEERS") == "1"


def check_peers(*names: str) -> None:
    """Skip the running test with the reason where a named peer is missing; fail instead under
    SDEBENCH_REQUIRE_PEERS=1."""
    import pytest

    missing = missing_peers(*names)
    if not missing:
        return
    if peers_required():
        pytest.fail(f"peer libraries required here (SDEBENCH_REQUIRE_PEERS=1): {missing}",
                    pytrace=False)
    pytest.skip(f"peer library absent: {missing}" + ("" if "pip install" in missing
                                                       else f" ({INSTALL})"))
