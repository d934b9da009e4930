"""Train a small score network by denoising score matching on data with a known density.

    python experiments/train.py --data gmm --dim 2 --steps 4000
    python experiments/convergence.py --model results/train/<run>/checkpoint.pt --problem gmm \\
        --dim 2 --samplers euler,heun,dpmpp_2m --steps 4,8,16,32,64

Re-running the same command resumes from the checkpoint (bit for bit on the CPU); a checkpoint
made with other settings is refused. Exit status 2 for bad arguments (a network factory that
fails, a network or learning rate whose first step changes no weight, a damaged checkpoint),
1 when the loss diverges (the last checkpoint is kept), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from sdebench.studies.provenance import digest


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,8,8, got {text!r}") from None


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from sdebench.theory.parameterisation import KINDS
    from sdebench.training.dsm import WEIGHTINGS
    from sdebench.training.trainer import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog=prog, description="Denoising score matching for a time-conditioned MLP on a problem "
                               "of the catalogue (its data law), seeded and resumable.")
    parser.add_argument("--data", default=defaults.data,
                        help=f"problem whose data law to learn (default: {defaults.data}; "
                             "gmm in 2-D is the 8-component ring)")
    parser.add_argument("--dim", type=int, default=defaults.dim, help="data dimension (default: 2)")
    parser.add_argument("--sde", dest="schedule", default=defaults.schedule,
                        help="schedule the network is trained on (default: vp)")
    parser.add_argument("--prediction", default=defaults.prediction,
                        choices=list(KINDS), help="network output (default: eps; v_flow with "
                                                  "--weighting flow on --sde rf: conditional flow "
                                                  "matching)")
    parser.add_argument("--weighting", default=defaults.weighting, choices=WEIGHTINGS,
                        help="simple: ε-MSE (= λ = s²σ² on the score); likelihood: λ = g²; "
                             "edm: Karras et al.'s; flow: ‖v̂ − (ε − x₀)‖², conditional flow "
                             "matching (default: simple)")
    for name, help_text in (("steps", "optimiser steps"), ("batch", "samples per step"),
                            ("width", "hidden units per layer"), ("depth", "hidden layers"),
                            ("seed", "seed of weights, data and noise"),
                            ("checkpoint_every", "steps between checkpoints")):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int,
                            default=getattr(defaults, name),
                            help=f"{help_text} (default: {getattr(defaults, name)})")
    parser.add_argument("--learning-rate", dest="learning_rate", type=float,
                        default=defaults.learning_rate, help="Adam's step size (default: 2e-3)")
    parser.add_argument("--dtype", default=defaults.dtype, choices=["float32", "float64"],
                        help="training precision (default: float32)")
    parser.add_argument("--device", default=defaults.device, help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--network", default=None,
                        help="module:factory of your own network (an nn.Module called as "
                             "net(x, t) on states of shape (batch, *shape)); default: an MLP "
                             "of --width and --depth")
    parser.add_argument("--shape", type=_shape, default=None,
                        help="one sample's shape, e.g. 1,8,8 (the data vectors of --dim "
                             "reshaped, for an image network); default: (dim,)")
    parser.add_argument("--out", default=None,
                        help="output directory (default: results/train/<data>_d<dim>_<hash>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None, prog: str | None = None) -> int:
    from sdebench.devices import device_problem
    from sdebench.training.trainer import TrainConfig, load_checkpoint, train

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    problem = device_problem(args.device)  # not a device, not cpu/cuda[:N], no such GPU
    if problem:
        parser.error(problem)
    try:
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    out = args.out or f"results/train/{config.data}_d{config.dim}_{digest(asdict(config), 10)}"
    checkpoint = Path(out) / "checkpoint.pt"
    start = time.perf_counter()
    try:
        first = load_checkpoint(checkpoint)["step"] if checkpoint.exists() else 0
        payload = train(config, out, progress=not args.quiet)
    except ValueError as error:
        parser.error(str(error))
    except FloatingPointError as error:  # the loss diverged: the run, not the command line
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        saved = (f"the last checkpoint ({load_checkpoint(checkpoint)['step']} steps) is in "
                 f"{out}" if checkpoint.exists() else "no checkpoint was written yet")
        print(f"interrupted: {saved}; run the same command again to resume", file=sys.stderr)
        return 130
    losses = payload["losses"]
    tail = losses[-min(len(losses), 200):]
    ran = payload["step"] - first
    done = (f"already trained: {payload['step']} steps, nothing to do" if ran == 0 else
            f"trained {ran} steps" + (f" (steps {first + 1}–{payload['step']}, resumed)" if first
                                      else "") + f" in {time.perf_counter() - start:.1f} s")
    print(f"{done}; mean loss of the last {len(tail)} steps: {sum(tail) / len(tail):.4g}")
    print(f"checkpoint: {out}/checkpoint.pt (use: --model {out}/checkpoint.pt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
