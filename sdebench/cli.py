"""The ``sdebench`` console command: one subcommand per script of ``experiments/``.

    sdebench convergence --sde vp        # = python experiments/convergence.py --sde vp
    sdebench report results/convergence/<study>
    sdebench speed
    sdebench peers

Each subcommand is the ``main(argv)`` of the experiment module of the same name, so the script
and the command are the same code. Helpers the experiment CLIs share live here too.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "convergence": "measured solver orders with confidence intervals against declared orders",
    "report": "render the HTML report of a saved study",
    "speed": "wall time per NFE relative to one model evaluation (the floor)",
    "peers": "the same floor ratio for diffusers' schedulers beside sdebench's",
    "train": "denoising score matching for a small network (its checkpoint is a --model)",
    "audit": "every peer sampler judged on exact answers: one HTML page and the findings",
    "list": "what a study may name: schedules, samplers, peers, problems, grids, metrics",
    "perf": "benchmarks across commits (asv): history page, slowdown check, its noise",
}


def _usage() -> str:
    lines = ["usage: sdebench <command> [options]   (sdebench <command> --help for its options)",
             "", "commands:"]
    lines += [f"  {name:<12} {text}" for name, text in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from sdebench import __version__

        print(f"sdebench {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        from sdebench.registry import did_you_mean

        print(f"sdebench: unknown command {command!r}{did_you_mean(command, SUBCOMMANDS)}\n\n"
              f"{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"sdebench.experiments.{command}")
    except KeyboardInterrupt:
        print(f"sdebench {command}: interrupted while starting, before anything ran or was "
              "written; run the command again", file=sys.stderr)
        return 130
    return module.main(rest, prog=f"sdebench {command}")


if __name__ == "__main__":
    raise SystemExit(main())
