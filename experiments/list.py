"""List what a study may name: schedules, samplers (sdebench's own and plugins'), the peer
libraries' samplers, problems, grids and metrics, each with its one-line description.

    sdebench list                 # every catalogue
    sdebench list peers           # one of them: schedules, samplers, peers, problems, grids, metrics
"""

from __future__ import annotations

import argparse
import textwrap

WIDTH = 118


def catalogues() -> dict[str, list[tuple[str, str]]]:
    """catalogue → [(name, first line of its description)], samplers split into sdebench's own
    (and plugins') and the peer libraries'."""
    from sdebench.problems.catalogue import PROBLEMS
    from sdebench.solvers.catalogue import SAMPLERS, sampler_groups
    from sdebench.solvers.grids import GRIDS
    from sdebench.studies.metrics import METRICS
    from sdebench.theory.catalogue import SCHEDULES

    def described(registry, names):
        return [(name, _first_line(registry.factory(name).__doc__)) for name in names]

    groups = sampler_groups()
    return {"schedules": described(SCHEDULES, SCHEDULES.names()),
            "samplers": described(SAMPLERS, groups["all"]),
            "peers": described(SAMPLERS, groups["peers"]),
            "problems": described(PROBLEMS, PROBLEMS.names()),
            "grids": described(GRIDS, GRIDS.names()),
            "metrics": [(name, _first_line(METRICS.factory(name).description))
                        for name in METRICS.names()]}


def _first_line(text) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def main(argv=None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("catalogue", nargs="?", choices=["schedules", "samplers", "peers",
                                                          "problems", "grids", "metrics"],
                        help="one catalogue (default: all)")
    args = parser.parse_args(argv)
    listed = catalogues()
    for catalogue, entries in listed.items():
        if args.catalogue not in (None, catalogue):
            continue
        print(f"{catalogue}:")
        width = max(len(name) for name, _ in entries) + 2
        for name, text in entries:
            line = textwrap.shorten(text, WIDTH - width - 2, placeholder="…") if text else ""
            print(f"  {name:<{width}}{line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
