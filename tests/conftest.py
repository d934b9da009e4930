"""Tests marked ``peers`` skip with the reason where a peer library is missing, and fail instead
under SDEBENCH_REQUIRE_PEERS=1 (tests/peer_libraries.py)."""

from tests.peer_libraries import check_peers


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("peers")
    if marker is not None:
        check_peers(*marker.args)
