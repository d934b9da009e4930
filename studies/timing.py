"""The timing harness of sdebench: wall time relative to the floor, the time of one model
evaluation — used by ``experiments/speed.py``, ``experiments/peers.py`` and the asv benchmarks
alike.

A sampler's *floor ratio* is wall / (NFE × one denoiser call). Each timing is the median of
``repeat`` rounds after a warm-up round, printed with the fastest and slowest (a repeat run's
median falls in that range with the probability :func:`repeat_coverage`, 97% at 9 rounds, if
nothing changed between the runs). Rounds interleave: each round times the floor and every
sampler once, in turn (:func:`interleaved_timings`), so a change of the machine's load during
the run falls on all of them alike, and each ratio to the floor is taken within its round.

CPU hygiene: glibc serves large allocations with fresh mmap'd pages and returns them on free, so
every new 12 MB temporary page-faults; memory-bound timings then swing 2–4× between runs (the
floor of the diagonal problem measured 2.6 ms in one run and 10.9 ms in the next).
:func:`tune_glibc_malloc` keeps such blocks on the heap for the whole process.
"""

from __future__ import annotations

import sys
import time


def tune_glibc_malloc() -> str:
    """mallopt(M_MMAP_THRESHOLD = 32 MiB, the maximum; M_TRIM_THRESHOLD = 1 GiB) on glibc:
    large temporaries are reused from the heap instead of being mapped and faulted in each time.
    Returns a description for the report ('' if not glibc)."""
    import ctypes
    import ctypes.util

    if sys.platform != "linux":
        return ""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return ""
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    if mallopt(m_mmap_threshold, 32 * 2**20) and mallopt(m_trim_threshold, 2**30):
        return "glibc malloc: mmap threshold 32 MiB, trim threshold 1 GiB"
    return ""


def timings(fn, device: str, repeat: int = 3) -> list[float]:
    """Wall times of ``repeat`` calls after one untimed warm-up call (lazy compilation, caches,
    first-touch page faults), synchronising CUDA around each."""
    import torch

    fn()
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def interleaved_timings(calls: dict, device: str, repeat: int = 3) -> dict[str, list[float]]:
    """name → wall times of ``calls[name]()`` in ``repeat`` rounds, each round calling every
    function once in turn, after one untimed warm-up round (CUDA synchronised around each)."""
    import torch

    synchronize = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    times = {name: [] for name in calls}
    for round_index in range(repeat + 1):
        for name, fn in calls.items():
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()
            if round_index:  # round 0 warms up
                times[name].append(time.perf_counter() - start)
    return times


def median(times: list[float]) -> float:
    ordered = sorted(times)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def repeat_coverage(n: int) -> float:
    """Probability that the median of a repeat run of ``n`` timings lies within this run's
    [fastest, slowest], when all 2n timings are exchangeable (nothing changed between the runs).

    The repeat's median exceeds this run's slowest only if its ceil(n/2) largest timings all
    exceed every one of this run's, i.e. the k = ceil(n/2) largest of the 2n pooled timings all
    belong to the repeat: probability C(2n−k, n−k)/C(2n, n) by symmetry of ranks; the same below
    the fastest. For odd n this is exact, for even n (median = mean of the middle two) a bound:
    coverage ≥ 1 − 2·C(2n−k, n−k)/C(2n, n). Examples: n = 5 gives 83%, n = 9 97%, n = 15 99.8%.
    A two-way comparison (each run's median in the other's range) of identical runs fails for
    2/7 ≈ 29% of samplers at n = 5 and 5.6% at n = 9 (by enumerating the rank splits).
    """
    from math import ceil, comb

    k = ceil(n / 2)
    return 1 - 2 * comb(2 * n - k, n - k) / comb(2 * n, n)


def spread(times: list[float]) -> float:
    """Slowest over fastest of repeated timings: 1 on a quiet machine; above
    :data:`NOISY_SPREAD` the machine was busy and ratios are not to be trusted."""
    return max(times) / min(times)


NOISY_SPREAD = 1.5
FLOOR_DRIFT = 1.2
"""If the floor of the last round differs from the first round's by more than this factor the
machine's load changed during the run (ratios are taken per round, but timings are not)."""
FLOOR_CALLS = 8
"""A floor timing is this many back-to-back model evaluations, per call."""


def floor_times(call, device: str, repeat: int = 3, calls: int = FLOOR_CALLS) -> list[float]:
    """One model evaluation: ``repeat`` timings of ``calls`` back-to-back calls, per call."""
    return [t / calls for t in timings(lambda: [call() for _ in range(calls)], device, repeat)]


def copy_bandwidth(device: str, dtype, megabytes: int = 512, repeat: int = 3) -> float:
    """Attainable memory bandwidth in bytes/s: best time of copying a large buffer (read + write)."""
    import torch

    count = megabytes * 2**20 // torch.empty((), dtype=dtype).element_size()
    source = torch.ones(count, dtype=dtype, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    return 2 * source.numel() * source.element_size() / min(
        timings(lambda: target.copy_(source), device, repeat))


class CountingNoise:
    """Counts the noise draws a sampler makes (for the stochastic samplers' allowance)."""

    def __init__(self, inner):
        self.inner, self.draws = inner, 0

    def increment(self, t_a, t_b, like, channel=0):
        self.draws += 1
        return self.inner.increment(t_a, t_b, like, channel)

    def normal(self, t_a, t_b, like, channel=0):
        self.draws += 1
        return self.inner.normal(t_a, t_b, like, channel)


COVARIANCES = ("full", "diagonal")


def speed_problem(dim: int, dtype: str, device: str, covariance: str = "full"):
    """Problem ``gaussian_rotated`` of the catalogue (seed 0) on VP: Gaussian data whose exact
    denoiser is two d×d products (``full``, a network's role) or elementwise (``diagonal``)."""
    import torch

    from sdebench.problems.catalogue import get_problem
    from sdebench.theory import get_schedule

    problem = get_problem(f"gaussian_rotated:covariance={covariance!r}", get_schedule("vp"),
                          dim=dim, seed=0)
    return problem.to(dtype=getattr(torch, dtype), device=device)


FLOOR_RATIO_BENCHMARK = dict(dim=1024, batch=256, steps=4, dtype="float32", device="cpu",
                             repeat=9, copy_mb=64, threads=1)
"""What asv's ``benchmarks.FloorRatio`` times and ``sdebench perf calibrate`` repeats to measure
its noise: the denoiser two 1024² products over a batch of 256, on one thread, so that another
process on a second core does not slow the hand-offs between the run's own threads."""


def floor_ratio_table(samplers: list[str], *, dim: int, batch: int, steps: int, dtype: str,
                      device: str, repeat: int, covariance: str = "full",
                      check_finite: str = "auto", copy_mb: int = 512,
                      peak_gbps: float | None = None, progress: bool = False,
                      threads: int | None = None):
    """(tidy DataFrame, one header line): per sampler its NFE, noise draws, wall time (median,
    fastest, slowest, spread) and floor ratio (median of the per-round ratios, with their
    range), the target it is held to (deterministic ≤ 1.2×; stochastic ≤ 2× plus its noise
    draws' measured cost; and ``bound_ratio`` ≤ :func:`bound_target`: ``within_target`` needs
    both), samples/s and the lower-bound traffic 2 × state bytes per NFE / wall
    as a fraction of the measured copy bandwidth of a ``copy_mb`` buffer (or of ``peak_gbps``).

    The limit beside the ratio (:func:`step_bound`): per step, the bytes the sampler's own
    operations move (``step_MB``, ``passes`` in states; counted by one instrumented run,
    :mod:`sdebench.studies.traffic`), their time at the bandwidth of a state-sized copy
    (``traffic_ms``), the bound ``bound_ms`` = (NFE × floor + draws × one draw + non-noise
    bytes / bandwidth) / steps and ``bound_ratio`` = wall / bound, the median of per-round
    ratios: floor, copy and draw are timed in every round beside the samplers. ``threads``:
    torch's intra-op threads for the run (restored after; None: as they are)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _floor_ratio_table(samplers, dim, batch, steps, dtype, device, repeat, covariance,
                                  check_finite, copy_mb, peak_gbps, progress)
    finally:
        torch.set_num_threads(before)


def step_bound(traffic, nfe: int, draws: float, floor: float, draw: float, bandwidth: float) -> float:
    """The least time a run can take, in seconds: NFE × floor + draws × draw + (the sampler's own
    bytes but its noise writes) / bandwidth.

    A sum, not a maximum (the roofline's max(compute, traffic) bounds one kernel): a step's
    model call needs the state its update wrote, and the update needs the model's output, so
    the two never overlap. The model and the normal draws enter at their measured times (a
    black box, and on a CPU a draw costs ~30 copies of what it writes: mt19937 and
    Box–Muller), the sampler's other reads and writes (:class:`sdebench.studies.traffic.Traffic`)
    at the bandwidth of a copy of the state's size, which sees the caches the sampler sees."""
    return nfe * floor + draws * draw + (traffic.bytes - traffic.noise_bytes) / bandwidth


BOUND_TARGET = 1.5
"""Issue 28's target for ``bound_ratio`` with a cheap model (``--covariance diagonal``)."""
HEAVY_BOUND_TARGET = 1.1
"""Issue 28's target with a heavy model (``--covariance full``: two d×d products per call, so
the bound is NFE × floor to within the noise draws and the sampler's traffic): ≤ 1.1."""


def bound_target(covariance: str) -> float:
    """The ``bound_ratio`` a run with this model is held to: :data:`HEAVY_BOUND_TARGET` for the
    full covariance, :data:`BOUND_TARGET` for the cheap diagonal one."""
    return HEAVY_BOUND_TARGET if covariance == "full" else BOUND_TARGET


def bound_columns(traffic, *, nfe: int, draws: float, steps: int, state_bytes: int,
                  walls: list[float], floors: list[float], draw_times: list[float],
                  bandwidths: list[float]) -> dict:
    """The limit beside a ratio, per step: ``step_MB`` (the bytes ``traffic`` counted outside the
    model), ``passes`` (those bytes in states), ``kernels``, ``traffic_ms`` (the bytes at the
    state copy's bandwidth), ``step_ms`` (wall), ``bound_ms`` (:func:`step_bound` / steps) and
    ``bound_ratio`` = wall / bound, the median of the per-round ratios.

    ``walls``, ``floors``, ``draw_times`` (one normal draw of the state's size) and
    ``bandwidths`` (:func:`copy_bandwidths`) are per round, timed in the same rounds
    (:func:`interleaved_timings`), or each one median where they were timed apart
    (experiments/peers.py); ``bound_ms`` takes their medians."""
    bounds = [step_bound(traffic, nfe, draws, f, d, b)
              for f, d, b in zip(floors, draw_times, bandwidths, strict=True)]
    bandwidth = median(bandwidths)
    return {"step_MB": traffic.bytes / steps / 1e6,
            "passes": traffic.bytes / steps / state_bytes,
            "kernels": traffic.kernels / steps,
            "traffic_ms": traffic.bytes / steps / bandwidth * 1e3,
            "step_ms": median(walls) / steps * 1e3,
            "bound_ms": step_bound(traffic, nfe, draws, median(floors), median(draw_times),
                                   bandwidth) / steps * 1e3,
            "bound_ratio": median([w / b for w, b in zip(walls, bounds, strict=True)])}


def limit_calls(x, ts) -> dict:
    """The two calls a bound is timed from beside the model: :data:`COPY`, one copy of the state
    ``x`` into a buffer (read + write: the bandwidth the sampler's arithmetic sees, caches
    included), and :data:`DRAW`, one normal draw of its size (sdebench's plain increments)."""
    import torch

    from sdebench.solvers.noise import GaussianIncrements

    copy_target, noise = torch.empty_like(x), GaussianIncrements(0)
    return {COPY: lambda: copy_target.copy_(x), DRAW: lambda: noise.normal(ts[0], ts[1], x)}


def copy_bandwidths(copy_times: list[float], state_bytes: int) -> list[float]:
    """Bytes/s of each timed copy of a state: read + write, 2 × state bytes / time."""
    return [2 * state_bytes / t for t in copy_times]


def bound_timings(run, floor_call, x, ts, device: str, repeat: int = 3):
    """(walls, floors, draw_times, bandwidths), each per round, for one sampler timed as
    :func:`floor_ratio_table` times its samplers: ``repeat`` interleaved rounds
    (:func:`interleaved_timings`) of ``run()`` beside :data:`FLOOR_CALLS` calls each of
    ``floor_call`` (one model evaluation) and of :func:`limit_calls` (the state copy, a normal
    draw), so a change of the machine's load falls on the run and its bound alike. For callers
    whose samplers each see their own model (experiments/peers.py); :func:`bound_columns` takes
    the four lists."""
    times = interleaved_timings({**_limit_rounds(floor_call, x, ts), RUN: run}, device, repeat)
    return (times[RUN], *_per_call(times, x.numel() * x.element_size()))


def _limit_rounds(floor_call, x, ts) -> dict:
    """The calls a round times beside the samplers: the floor ``floor_call`` and
    :func:`limit_calls`, each made :data:`FLOOR_CALLS` times back to back (one timing of a
    short call)."""
    calls = {FLOOR: floor_call, **limit_calls(x, ts)}
    return {key: lambda call=call: [call() for _ in range(FLOOR_CALLS)]
            for key, call in calls.items()}


def _per_call(times: dict, state_bytes: int) -> tuple[list[float], list[float], list[float]]:
    """(floors, draw_times, bandwidths) per round, from the timings of :func:`_limit_rounds`."""
    floors, draw_times, copy_times = ([t / FLOOR_CALLS for t in times[key]]
                                      for key in (FLOOR, DRAW, COPY))
    return floors, draw_times, copy_bandwidths(copy_times, state_bytes)


def _floor_ratio_table(samplers, dim, batch, steps, dtype, device, repeat, covariance,
                       check_finite, copy_mb, peak_gbps, progress):
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from sdebench.solvers.catalogue import get_solver
    from sdebench.solvers.grids import log_snr_grid
    from sdebench.solvers.loop import sample
    from sdebench.solvers.noise import GaussianIncrements
    from sdebench.studies.traffic import count_traffic

    torch_dtype = getattr(torch, dtype)
    problem = speed_problem(dim, dtype, device, covariance)
    schedule = problem.schedule
    ts = log_snr_grid(schedule, steps, device=device)
    x = problem.sample_marginal(ts[0].to(torch_dtype), batch)
    t_mid = ts[steps // 2]
    measured_peak = copy_bandwidth(device, torch_dtype, copy_mb, repeat)
    peak = measured_peak if peak_gbps is None else peak_gbps * 1e9
    state_bytes = x.numel() * x.element_size()
    names = list(samplers)
    solvers = {name: get_solver(name) for name in names}
    noises = {name: CountingNoise(GaussianIncrements(1)) for name in names}
    nfe = {}

    def runner(name, model=problem.denoiser, noise=None):
        def run():
            counted = noises[name] if noise is None else noise
            counted.draws = 0
            nfe[name] = sample(solvers[name], model, schedule, x, ts, noise=counted,
                               check_finite=check_finite).nfe
        return run

    traffic = {name: count_traffic(
        lambda model, name=name: runner(name, model, CountingNoise(GaussianIncrements(1)))(),
        problem.denoiser, x.numel()) for name in names}
    calls = {**_limit_rounds(lambda: problem.denoiser(x, t_mid), x, ts),
             **{name: runner(name) for name in names}}
    bar = tqdm(total=repeat + 1, desc="rounds", disable=not progress)
    times = interleaved_timings(_counting(calls, bar), device, repeat)
    bar.close()
    floor_rounds, draw_rounds, bandwidth_rounds = _per_call(times, state_bytes)
    floor, noise_draw, bandwidth = (median(r) for r in (floor_rounds, draw_rounds, bandwidth_rounds))
    rows = []
    for name in names:
        solver, walls, moved = solvers[name], times[name], traffic[name]
        ratios = [wall / (nfe[name] * f) for wall, f in zip(walls, floor_rounds, strict=True)]
        wall, ratio = median(walls), median(ratios)
        allowed = (2 + noises[name].draws * noise_draw / (nfe[name] * floor)) \
            if solver.stochastic else 1.2
        min_traffic = 2 * state_bytes * nfe[name] / wall
        bound = bound_columns(moved, nfe=nfe[name], draws=noises[name].draws, steps=steps,
                              state_bytes=state_bytes, walls=walls, floors=floor_rounds,
                              draw_times=draw_rounds, bandwidths=bandwidth_rounds)
        rows.append({"sampler": name, "stochastic": solver.stochastic, "nfe": nfe[name],
                     "noise_draws": noises[name].draws, "wall_s": wall, "wall_min": min(walls),
                     "wall_max": max(walls), "spread": spread(walls),
                     "floor_ratio": ratio, "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "allowed_ratio": allowed, "allowed_bound_ratio": bound_target(covariance),
                     "within_target": ratio <= allowed
                     and bound["bound_ratio"] <= bound_target(covariance),
                     "samples_per_s": batch / wall,
                     "min_traffic_GBps": min_traffic / 1e9, "fraction_of_peak": min_traffic / peak,
                     **bound})
    header = (f"denoiser (floor) {floor * 1e3:.1f} ms (spread {spread(floor_rounds):.2f}); "
              f"one noise draw {noise_draw * 1e3:.1f} ms "
              f"({state_bytes / noise_draw / 1e9:.1f} GB/s written); "
              f"d={dim} batch={batch} {dtype} {device} steps={steps} "
              f"{covariance} covariance; state {state_bytes / 1e6:.1f} MB, its copy "
              f"{bandwidth / 1e9:.1f} GB/s (read + write; spread {spread(bandwidth_rounds):.2f}); "
              f"copy bandwidth ({copy_mb} MiB) {measured_peak / 1e9:.1f} GB/s"
              + ("" if peak_gbps is None else f", datasheet peak {peak_gbps:g} GB/s")
              + f"; bound_ratio = wall / (NFE × floor + draws × draw + other bytes / state copy "
              f"bandwidth), target ≤ {bound_target(covariance):g} with this model"
              + f"; {repeat} interleaved rounds: a repeat run's median falls within "
              f"[ratio_min, ratio_max] with probability {'≥ ' * (repeat % 2 == 0)}"
              f"{repeat_coverage(repeat):.1%} if nothing changed (timing.repeat_coverage)")
    table = pd.DataFrame(rows)
    table.attrs.update(floor_s=floor, draw_s=noise_draw, state_copy_Bps=bandwidth,
                       floor_spread=spread(floor_rounds))
    table.attrs["floor_drift"] = max(floor_rounds[0], floor_rounds[-1]) / min(
        floor_rounds[0], floor_rounds[-1])
    return table, header


FLOOR, COPY, DRAW, RUN = "(floor)", "(copy)", "(draw)", "(run)"


def _counting(calls: dict, bar) -> dict:
    """The same calls, advancing ``bar`` once per round (after the last call of a round)."""
    last = list(calls)[-1]

    def tick(fn):
        def call():
            fn()
            bar.update()
        return call

    return {name: tick(fn) if name == last else fn for name, fn in calls.items()}
