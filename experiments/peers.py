"""The floor ratio of experiments/speed.py for the peer libraries (k-diffusion, diffusers)
beside sdebench's.

    pip install "sdebench[peers]" && pip install --no-deps k-diffusion   # optional peers
    python experiments/peers.py           # d = 3072, batch 1024, float32, CPU, 4 steps
    python experiments/peers.py --covariance diagonal --brownian   # only the Brownian paths

All libraries sample the same Gaussian problem with the same model cost. diffusers' schedulers
run as the convergence studies run ``diffusers.<Scheduler>`` (:class:`sdebench.peers.diffusers.
DiffusersSampler` through :func:`sdebench.solvers.loop.sample`): diffusers' own loop on the
study's σ table with the exact ε-network of the problem's denoiser
(:meth:`~sdebench.peers.diffusers.DiffusersSampler.scheduler_and_network`); k-diffusion's samplers
get the denoiser D(x̃; σ) of x̃ = x/s. Each library's floor is one call of the model it sees
(that ε-network for diffusers, the denoiser for sdebench and k-diffusion), so the ratio is the
library's own overhead. Their accuracy is measured by the convergence study
(``--samplers kdiffusion.heun,diffusers.…``, README).

Beside every ratio, the traffic bound of experiments/speed.py in the same run
(:func:`sdebench.studies.timing.bound_columns`): each sampler runs once under the traffic counter
(:mod:`sdebench.studies.traffic`) with its library's floor model excluded, giving ``step_MB``,
``passes``, ``kernels``, ``noise_draws`` (the normals it drew, in states, however its library
draws them: torch, a generator, torchsde's tree) and ``bound_ratio`` = wall / (NFE × floor +
draws × one normal draw + other bytes / the state copy's bandwidth). As in speed.py, each sampler
is timed in interleaved rounds beside its floor, the copy and the draw
(:func:`sdebench.studies.timing.bound_timings`), so the machine's load falls on all alike.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from tqdm.auto import tqdm

from sdebench.experiments.speed import add_size_arguments, check_device, print_table

# (label, study spec): diffusers' schedulers as the convergence studies name them
DIFFUSERS_SAMPLERS = [
    ("DDIMScheduler", "diffusers.DDIMScheduler"),
    ("EulerDiscreteScheduler", "diffusers.EulerDiscreteScheduler"),
    ("HeunDiscreteScheduler", "diffusers.HeunDiscreteScheduler"),
    ("DPMSolverMultistepScheduler (2M)", "diffusers.DPMSolverMultistepScheduler"),
    ("UniPCMultistepScheduler", "diffusers.UniPCMultistepScheduler"),
    ("EulerAncestralDiscreteScheduler", "diffusers.EulerAncestralDiscreteScheduler"),
    ("DPMSolverMultistepScheduler (SDE 2M)",
     "diffusers.DPMSolverMultistepScheduler:algorithm_type=sde-dpmsolver++"),
    ("DPMSolverSDEScheduler (torchsde tree)", "diffusers.DPMSolverSDEScheduler"),
]
SDEBENCH_SAMPLERS = ["ddim", "euler", "heun", "dpmpp_2m", "unipc_bh2", "ancestral",
                     "dpmpp_2m_sde", "reverse_diffusion"]


class TorchsdeInterval:
    """torchsde's ``BrownianInterval`` as an sdebench noise source (one per channel and shape):
    W(t_b) − W(t_a) for either order of the times, as the reverse-time samplers ask."""

    def __init__(self, t0: float, t1: float, seed: int):
        self.t0, self.t1, self.seed, self._paths = t0, t1, seed, {}

    def increment(self, t_a, t_b, like, channel: int = 0):
        import torchsde

        from sdebench.seeding import derive_seed

        key = (channel, tuple(like.shape), like.dtype, str(like.device))
        if key not in self._paths:
            self._paths[key] = torchsde.BrownianInterval(
                self.t0, self.t1, size=like.shape, dtype=like.dtype, device=like.device,
                entropy=derive_seed(self.seed, "torchsde", channel) % 2**31)
        low, high = sorted((float(t_a), float(t_b)))
        increment = self._paths[key](low, high)
        return increment if float(t_b) >= float(t_a) else -increment

    def normal(self, t_a, t_b, like, channel: int = 0):
        return self.increment(t_a, t_b, like, channel) / abs(float(t_b) - float(t_a)) ** 0.5


def diffusers_rows(problem, x_start, steps: int, device: str, repeat: int, quiet: bool = False):
    """Each of :data:`DIFFUSERS_SAMPLERS` sampled from x_start as a study samples it (module
    docstring), without sdebench's NaN/Inf check (k-diffusion's rows have none either); its floor
    is one call of the network its scheduler calls, at its middle timestep, and its traffic is
    the run's less NFE × one call of that network's (:meth:`~sdebench.studies.traffic.Traffic.
    without`: the network's conversions around the denoiser are in the floor)."""
    import importlib.metadata

    from sdebench.solvers.catalogue import get_solver
    from sdebench.solvers.grids import log_snr_grid
    from sdebench.solvers.loop import sample
    from sdebench.studies.traffic import StateTraffic, count_traffic

    schedule = problem.schedule
    ts = log_snr_grid(schedule, steps, device=device)
    version = importlib.metadata.version("diffusers")
    rows = []
    for label, spec in tqdm(DIFFUSERS_SAMPLERS, desc="diffusers", disable=quiet):
        solver = get_solver(spec)
        scheduler, network = solver.scheduler_and_network(schedule, steps, problem.denoiser,
                                                          device=x_start.device)
        middle = scheduler.timesteps[len(scheduler.timesteps) // 2]
        result = {}

        def run(model=problem.denoiser, solver=solver, result=result):
            # sdebench's NaN/Inf check is not diffusers'
            result["nfe"] = sample(solver, model, schedule, x_start, ts, check_finite="off").nfe

        def count(run=run, solver=solver, middle=middle, result=result):
            call = StateTraffic(x_start.numel())  # the network made outside the count
            _, counted_network = solver.scheduler_and_network(
                schedule, steps, call.model(problem.denoiser), device=x_start.device)
            with call:
                counted_network(x_start, middle)
            return count_traffic(run, problem.denoiser, x_start.numel()).without(
                call.result(), result["nfe"])

        rows.append({"library": f"diffusers {version}", "sampler": label,
                     "stochastic": solver.stochastic, **timed_columns(
                         run, lambda result=result: result["nfe"],
                         lambda network=network, middle=middle: network(x_start, middle), count,
                         x_start, ts, device, repeat)})
    return rows


KDIFFUSION_SAMPLERS = ["euler", "heun", "dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde"]


def kdiffusion_rows(problem, x_start, steps: int, device: str, repeat: int, quiet: bool = False):
    """k-diffusion's samplers called directly (its own loop and its default Brownian-tree noise)
    on x̃ = x/s with the denoiser D(x̃; σ) of the same problem; the floor is one call of it."""
    import importlib.metadata

    from sdebench.peers.kdiffusion import METHODS, sampling_module
    from sdebench.solvers.grids import log_snr_grid
    from sdebench.solvers.loop import CountingModel
    from sdebench.studies.traffic import count_traffic

    module = sampling_module()
    numeric = problem.schedule.numeric
    ts = log_snr_grid(problem.schedule, steps, device=device)
    sigmas = numeric.sigma(ts).to(x_start)
    x_tilde = x_start / numeric.s(ts[0])
    version = importlib.metadata.version("k-diffusion")
    model = CountingModel(lambda x, sigma: problem.denoise_at(x, 1, sigma[0]))
    rows = []
    for method in tqdm(KDIFFUSION_SAMPLERS, desc="k-diffusion", disable=quiet):
        function = getattr(module, METHODS[method].function)

        def run(function=function):
            model.calls = 0
            function(model, x_tilde, sigmas, disable=True)

        def count(function=function):
            return count_traffic(lambda counted: function(counted, x_tilde, sigmas, disable=True),
                                 model.model, x_tilde.numel())

        rows.append({"library": f"k-diffusion {version}", "sampler": method,
                     "stochastic": METHODS[method].stochastic, **timed_columns(
                         run, lambda: model.calls,
                         lambda: model.model(x_tilde, sigmas[steps // 2:][:1]), count,
                         x_tilde, ts, device, repeat)})
    return rows


def brownian_paths(schedule, ts) -> list:
    """(label, noise factory) of reverse_diffusion's Brownian paths beside plain increments: the
    grid drawn up front, sdebench's on-line tree and torchsde's BrownianInterval."""
    from sdebench.solvers.noise import BrownianGrid, BrownianTree

    span = (float(schedule.t_min), float(schedule.t_max))
    return [("reverse_diffusion (Brownian grid)", lambda: BrownianGrid(ts.cpu(), seed=0)),
            ("reverse_diffusion (Brownian tree)", lambda: BrownianTree(*span, seed=0)),
            ("reverse_diffusion (torchsde BrownianInterval)", lambda: TorchsdeInterval(*span, 0))]


def brownian_rows(problem, x_start, steps: int, device: str, repeat: int, quiet: bool = False):
    """reverse_diffusion with plain increments and with each Brownian path, timed in interleaved
    rounds (:func:`sdebench.studies.timing.interleaved_timings`); ``vs_plain`` is the median
    over rounds of the run's wall time over plain increments' in the same round."""
    from sdebench.solvers.catalogue import get_solver
    from sdebench.solvers.grids import log_snr_grid
    from sdebench.solvers.loop import sample
    from sdebench.solvers.noise import GaussianIncrements
    from sdebench.studies.timing import floor_times, interleaved_timings, median, spread

    schedule = problem.schedule
    ts = log_snr_grid(schedule, steps, device=device)
    solver = get_solver("reverse_diffusion")
    floor = median(floor_times(lambda: problem.denoiser(x_start, ts[steps // 2]), device, repeat))
    runs = [("reverse_diffusion", lambda: GaussianIncrements(0)), *brownian_paths(schedule, ts)]
    nfe = {}

    def call(label, make_noise):
        nfe[label] = sample(solver, problem.denoiser, schedule, x_start, ts, noise=make_noise()).nfe

    times = interleaved_timings({label: lambda label=label, make_noise=make_noise:
                                 call(label, make_noise) for label, make_noise in runs},
                                device, repeat)
    plain = times["reverse_diffusion"]
    return [{"library": "sdebench", "sampler": label, "stochastic": solver.stochastic,
             "nfe": nfe[label], "wall_s": median(wall), "spread": spread(wall),
             "floor_ratio": median(wall) / (nfe[label] * floor),
             "vs_plain": median([run / base for run, base in zip(wall, plain, strict=True)])}
            for label, wall in times.items()]


def sdebench_rows(problem, x_start, steps: int, device: str, repeat: int, quiet: bool = False):
    from sdebench.solvers.catalogue import get_solver
    from sdebench.solvers.grids import log_snr_grid
    from sdebench.solvers.loop import sample
    from sdebench.solvers.noise import GaussianIncrements
    from sdebench.studies.traffic import count_traffic

    schedule = problem.schedule
    ts = log_snr_grid(schedule, steps, device=device)
    runs = [(name, GaussianIncrements) for name in SDEBENCH_SAMPLERS]
    runs += brownian_paths(schedule, ts)
    rows = []
    for label, make_noise in tqdm(runs, desc="sdebench", disable=quiet):
        solver = get_solver(label.split(" ")[0])
        result = {}

        def run(model=problem.denoiser, solver=solver, make_noise=make_noise, result=result):
            result["nfe"] = sample(solver, model, schedule, x_start, ts, noise=make_noise()).nfe

        rows.append({"library": "sdebench", "sampler": label, "stochastic": solver.stochastic,
                     **timed_columns(run, lambda result=result: result["nfe"],
                                     lambda: problem.denoiser(x_start, ts[steps // 2]),
                                     lambda run=run: count_traffic(run, problem.denoiser,
                                                                   x_start.numel()),
                                     x_start, ts, device, repeat)})
    return rows


def _workload(args: argparse.Namespace):
    """(the sizes every row function takes, header line) for the options ``args``."""
    import torch

    from sdebench.studies.timing import speed_problem

    # torchsde warns when diffusers queries its tree a float32 ulp outside [t0, t1]; diffusers
    # warns about its own use of numpy 2's __array__ protocol. Neither concerns the timing.
    warnings.filterwarnings("ignore", module="torchsde")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="diffusers")
    problem = speed_problem(args.dim, args.dtype, args.device, args.covariance)
    generator = torch.Generator(device=args.device).manual_seed(1)
    x_start = torch.randn(args.batch, args.dim, generator=generator, device=args.device,
                          dtype=getattr(torch, args.dtype))
    header = (f"d={args.dim} batch={args.batch} {args.dtype} {args.device} steps={args.steps} "
              f"{args.covariance} covariance; floor_ratio = wall / (NFE × one model call)")
    return (problem, x_start, args.steps, args.device, args.repeat, args.quiet), header


def timed_columns(run, nfe, floor_call, count, x_start, ts, device: str, repeat: int) -> dict:
    """One sampler's columns: ``run()`` timed in interleaved rounds beside its library's floor
    ``floor_call()`` and the state's copy and normal draw
    (:func:`sdebench.studies.timing.bound_timings`); then ``nfe()``, the wall time (median,
    spread), ``floor_ratio`` = wall / (NFE × floor) at the medians, ``noise_draws`` (the normals
    the run drew, in states: the noise bytes of ``count()``, its run under the traffic counter,
    as every library draws its own way), the draw time and copy bandwidth of its rounds
    (``draw_ms``, ``copy_GBps``) and :func:`sdebench.studies.timing.bound_columns`."""
    from sdebench.studies import timing

    walls, floors, draw_times, bandwidths = timing.bound_timings(run, floor_call, x_start, ts,
                                                                 device, repeat)
    calls, traffic = nfe(), count()
    steps = ts.numel() - 1
    state_bytes = x_start.numel() * x_start.element_size()
    draws = traffic.noise_bytes / state_bytes
    wall = timing.median(walls)
    return {"nfe": calls, "wall_s": wall, "spread": timing.spread(walls),
            "floor_ratio": wall / (calls * timing.median(floors)), "noise_draws": draws,
            "draw_ms": timing.median(draw_times) * 1e3,
            "copy_GBps": timing.median(bandwidths) / 1e9,
            **timing.bound_columns(traffic, nfe=calls, draws=draws, steps=steps,
                                   state_bytes=state_bytes, walls=walls, floors=floors,
                                   draw_times=draw_times, bandwidths=bandwidths)}


def peers_table(args: argparse.Namespace):
    """(tidy DataFrame, header line): sdebench's rows, then k-diffusion's and diffusers', each
    with its traffic bound (:func:`timed_columns`)."""
    import pandas as pd

    from sdebench.studies.timing import BOUND_TARGET

    sizes, header = _workload(args)
    return pd.DataFrame(sdebench_rows(*sizes) + kdiffusion_rows(*sizes)
                        + diffusers_rows(*sizes)), (
        f"{header}; each sampler timed in interleaved rounds beside its floor, a state copy "
        "(copy_GBps) and a normal draw (draw_ms); bound_ratio = wall / (NFE × floor + draws × "
        f"draw + other bytes / copy bandwidth), per round, target ≤ {BOUND_TARGET:g} with a "
        "cheap model")


def brownian_table(args: argparse.Namespace):
    """(tidy DataFrame, header line): only :func:`brownian_rows` (``--brownian``)."""
    import pandas as pd

    sizes, header = _workload(args)
    return pd.DataFrame(brownian_rows(*sizes)), header + "; vs_plain = wall / plain's, per round"


def main(argv=None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_size_arguments(parser)
    parser.add_argument("--brownian", action="store_true",
                        help="time only reverse_diffusion with plain increments and with each "
                             "Brownian path (grid, on-line tree, torchsde), in interleaved rounds")
    args = parser.parse_args(argv)
    check_device(parser, args.device)
    from sdebench.peers.catalogue import missing_libraries

    missing = missing_libraries()
    if missing:
        print(f"peers.py {missing}", file=sys.stderr)
        return 2
    print_table(brownian_table if args.brownian else peers_table, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
