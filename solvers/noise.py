"""Brownian noise sources with one interface.

``increment(t_a, t_b, like, channel)`` returns W(t_b) − W(t_a) (variance |t_b − t_a|) shaped like
``like``, and ``normal(t_a, t_b, like, channel)`` the same draw as a standard normal,
(W(t_b) − W(t_a))/√|t_b − t_a|; ``channel`` selects an independent Brownian motion (samplers that
need several normals per step use channels 1, 2, …). A source implements whichever of the two it
produces directly, so no draw is scaled up and straight back down.

* :class:`GaussianIncrements`: fresh independent draws from a seeded generator — fastest.
* :class:`BrownianGrid`: one Brownian path at times declared up front (e.g. the union of a
  coarse and a fine grid), drawn once: the same path at every resolution among those times, for
  one normal per grid interval and K + 1 stored states.
* :class:`BrownianTree`: one Brownian path drawn on-line at *any* times asked for (adaptive
  steps, unplanned queries) by Brownian bridges between the times drawn so far (torchsde's
  BrownianInterval design): one normal per new time, values in a bounded cache; the path depends
  on the order in which new times are asked for.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from sdebench.seeding import check_seed, derive_seed, generator
from sdebench.state import NoiseSource, sqrt_dt


def _channel_generator(cache: dict, device, seed: int, channel: int) -> torch.Generator:
    """The generator of stream (seed, channel) on ``device`` (:func:`sdebench.seeding.generator`),
    kept in ``cache`` so that successive draws continue its stream."""
    key = (str(device), seed, channel)
    if key not in cache:
        cache[key] = generator(seed, "increments", channel, device=device)
    return cache[key]


class GaussianIncrements(NoiseSource):
    """Independent N(0, |Δt|) draws, one seeded stream per channel."""

    def __init__(self, seed: int = 0):
        self.seed = check_seed(seed)
        self._generators: dict = {}

    def normal(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        generator = _channel_generator(self._generators, like.device, self.seed, channel)
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


class BrownianGrid(NoiseSource):
    """Brownian motion at declared times t_0 < … < t_K: W(t_0) = 0 and W(t_k) = Σ_{j<k} ΔW_j with
    independent ΔW_j ~ N(0, t_{j+1} − t_j) — the exact law of W at those times — drawn once per
    (channel, shape, dtype, device) and kept as K + 1 state-sized tensors. Every query is a
    difference W(t_b) − W(t_a) of stored values, so an increment over a coarse step is exactly
    the sum of the fine increments inside it (up to round-off): strong errors compare solutions
    on nested grids pathwise, at the cost of one normal per interval of the union.

    Query times must be declared ones (up to the rounding of the query's dtype); another time
    raises, since it would need a Brownian bridge — use :class:`BrownianTree` for adaptive or
    unplanned queries. ``seeds`` (one per batch row) draws each row from its own stream, so a
    row's path does not depend on its batch-mates (as :class:`PerSampleIncrements`).
    """

    _KEPT_PATHS = 8

    def __init__(self, times, seed: int = 0, seeds=None):
        values = sorted({float(t) for t in torch.as_tensor(times, dtype=torch.float64).flatten()})
        if len(values) < 2 or not all(math.isfinite(t) for t in values):
            raise ValueError(f"BrownianGrid needs at least two distinct finite times, got {values}")
        self.times = torch.tensor(values, dtype=torch.float64)
        self.seed = check_seed(seed)
        self.seeds = None if seeds is None else [check_seed(s) for s in seeds]
        self._paths: OrderedDict = OrderedDict()

    def _index(self, t) -> int:
        value = float(t)
        rounding = torch.finfo(t.dtype).eps if isinstance(t, torch.Tensor) else 0.0
        tolerance = 1e-12 * float(self.times[-1] - self.times[0]) + 4 * rounding * abs(value)
        index = int(torch.searchsorted(self.times, torch.tensor(value, dtype=torch.float64)))
        for candidate in (index - 1, index):
            if 0 <= candidate < len(self.times) and abs(float(self.times[candidate]) - value) <= tolerance:
                return candidate
        raise ValueError(f"time {value!r} is not one of the BrownianGrid's declared times "
                         f"[{float(self.times[0])}, …, {float(self.times[-1])}] "
                         f"({len(self.times)} times); use BrownianTree for unplanned queries")

    def _draw(self, like, channel: int) -> torch.Tensor:
        """W at every declared time: (K + 1, *like.shape), built in place (one normal per
        interval, one scaling and one cumulative-sum pass)."""
        steps = len(self.times) - 1
        path = torch.empty((steps + 1, *like.shape), dtype=like.dtype, device=like.device)
        path[0].zero_()
        if self.seeds is None:
            torch.randn((steps, *like.shape), dtype=like.dtype, device=like.device, out=path[1:],
                        generator=generator(self.seed, "brownian_grid", channel, device=like.device))
        else:
            if like.shape[0] != len(self.seeds):
                raise ValueError(f"{len(self.seeds)} seeds for a batch of {like.shape[0]}")
            for row, seed in enumerate(self.seeds):
                path[1:, row] = torch.randn(
                    (steps, *like.shape[1:]), dtype=like.dtype, device=like.device,
                    generator=generator(seed, "brownian_grid", channel, device=like.device))
        dt = (self.times[1:] - self.times[:-1]).to(dtype=like.dtype, device=like.device)
        path[1:].mul_(dt.sqrt().reshape(steps, *([1] * like.ndim)))
        path[1:].cumsum_(0)
        return path

    def _path(self, like, channel: int) -> torch.Tensor:
        key = (channel, tuple(like.shape), like.dtype, str(like.device))
        if key in self._paths:
            self._paths.move_to_end(key)
        else:
            self._paths[key] = self._draw(like, channel)
            if len(self._paths) > self._KEPT_PATHS:
                self._paths.popitem(last=False)
        return self._paths[key]

    def increment(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        path = self._path(like, channel)
        return path[self._index(t_b)] - path[self._index(t_a)]


@dataclass
class _BridgeTree:
    """The times drawn so far of one Brownian motion (one channel, shape, dtype and device):
    sorted, and for each time but t0 the drawn neighbours it was bridged between (None for the
    root t1) and its node number, which seeds its normal."""

    key: tuple
    stream: int
    generator: torch.Generator
    times: list = field(default_factory=list)
    parents: dict = field(default_factory=dict)


class BrownianTree(NoiseSource):
    """Brownian motion on [t0, t1], drawn on-line at the times asked for: W(t0) = 0,
    W(t1) = √(t1 − t0) z₀, and a new time t between the nearest times l < t < r drawn so far
    gets the Brownian bridge between them (Lévy's construction at arbitrary points; Glasserman
    2004, *Monte Carlo Methods in Financial Engineering*, §3.1, the Brownian bridge construction):

        W(t) = W(l) + (t − l)/(r − l) · (W(r) − W(l)) + √((t − l)(r − t)/(r − l)) · z.

    So the values at all the times asked for have the exact joint law of Brownian motion, each is
    drawn once, and every increment is a difference of two of them: an increment over a coarse
    step is the sum of the fine increments inside it (to round-off), whichever resolution was
    asked first. A new time costs one state-sized normal, a time already drawn none: a
    sampler's step costs what a plain increment costs plus three elementwise passes (the
    bridge's mean, the difference, the scaling). This is the design of torchsde's
    ``BrownianInterval`` (Kidger, Foster, Li & Lyons 2021, "Efficient and accurate gradients for
    neural SDEs"); the virtual Brownian tree of Li et al. 2020 (this class until issue 28) fixes
    the path by the seed alone but draws up to its depth, 24, normals per new time.

    The path depends on the seed *and on the order in which new times are asked for*, as
    torchsde's does: the same seed and the same sequence of queries give the same path bit for
    bit (``increment`` asks for t_a, then t_b). For a path fixed by the seed alone, declare the
    times up front (:class:`BrownianGrid`). Channels are independent motions.

    Memory: values sit in an LRU cache of ``cache_size`` state-sized tensors; the tree itself
    (three numbers per time drawn) is kept whole, and node k draws its normal from its own stream
    ``derive_seed(seed, channel) + k``, so an evicted value is recomputed bit for bit from its
    ancestors, one normal each for those the cache lost. Sequential queries (a sampler's steps,
    an adaptive solver's rejected and retried steps) only touch recent values.
    """

    def __init__(self, t0: float, t1: float, seed: int = 0, cache_size: int = 128):
        if not t0 < t1:
            raise ValueError(f"BrownianTree needs t0 < t1, got [{t0}, {t1}]")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.t0, self.t1, self.seed = float(t0), float(t1), check_seed(seed)
        self.cache_size = cache_size
        self._trees: dict = {}
        self._cache: OrderedDict = OrderedDict()
        self._normals_drawn = 0

    @property
    def cached_nodes(self) -> int:
        """Values held in the cache (at most ``cache_size``)."""
        return len(self._cache)

    @property
    def normals_drawn(self) -> int:
        """State-sized normals drawn so far, recomputations of evicted values included."""
        return self._normals_drawn

    def _time(self, t) -> float:
        """t as a float in [t0, t1]; a time outside by no more than its own rounding (4 ulps of
        its dtype, e.g. a float32 grid's end) is taken as the end."""
        value = float(t)
        rounding = (torch.finfo(t.dtype).eps * abs(value)
                    if isinstance(t, torch.Tensor) and t.is_floating_point() else 0.0)
        slack = 1e-12 * (self.t1 - self.t0) + 4 * rounding
        if not self.t0 - slack <= value <= self.t1 + slack:
            raise ValueError(f"time {value} outside the Brownian tree's [{self.t0}, {self.t1}]")
        return min(max(value, self.t0), self.t1)

    def _tree(self, like, channel: int) -> _BridgeTree:
        key = (channel, tuple(like.shape), like.dtype, str(like.device))
        if key not in self._trees:
            tree = _BridgeTree(key, derive_seed(self.seed, "brownian_tree", channel),
                               torch.Generator(device=like.device), [self.t0, self.t1])
            tree.parents[self.t1] = (None, None, 0)
            self._trees[key] = tree
        return self._trees[key]

    def _draw(self, tree: _BridgeTree, like, t: float, w_left, w_right) -> torch.Tensor:
        """W(t) from its bridge's end values (None for W(t0) = 0 and for the root's ends)."""
        left, right, node = tree.parents[t]
        # Consecutive streams per node: no two nodes of a motion share one (torch's CPU
        # generator keeps a seed's low 32 bits, where hashed seeds collide at ~n²/2³³).
        tree.generator.manual_seed((tree.stream + node) % 2**64)
        if right is None:
            mean_weight, variance = 0.0, self.t1 - self.t0
        else:
            mean_weight, variance = (t - left) / (right - left), (t - left) * (right - t) / (right - left)
        value = torch.empty(like.shape, dtype=like.dtype, device=like.device).normal_(
            0.0, math.sqrt(variance), generator=tree.generator)
        self._normals_drawn += 1
        if w_right is not None:
            value.add_(w_right, alpha=mean_weight)
        if w_left is not None:
            value.add_(w_left, alpha=1 - mean_weight)
        return value

    def _cached(self, key):
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
        return value

    def _store(self, key, value) -> None:
        self._cache[key] = value
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _value(self, like, channel: int, t) -> torch.Tensor | None:
        """W(t) (None for W(t0) = 0): a new time is bridged between its drawn neighbours; a
        value the cache lost is recomputed with its lost ancestors in node order (parents first),
        each held only until its last child is computed."""
        tree = self._tree(like, channel)
        t = self._time(t)
        if t == self.t0:
            return None
        if t not in tree.parents:
            position = bisect.bisect_left(tree.times, t)
            tree.parents[t] = (tree.times[position - 1], tree.times[position], len(tree.parents))
            tree.times.insert(position, t)
        cached = self._cached((tree.key, t))
        if cached is not None:
            return cached
        lost, held, pending = {}, {}, [t]
        while pending:
            time = pending.pop()
            if time is None or time == self.t0 or time in lost or time in held:
                continue
            cached = self._cached((tree.key, time))
            if cached is not None:
                held[time] = cached
            else:
                lost[time] = tree.parents[time]
                pending += lost[time][:2]
        order = sorted(lost, key=lambda time: lost[time][2])
        last_use = {parent: index for index, time in enumerate(order) for parent in lost[time][:2]}
        for index, time in enumerate(order):
            left, right, _ = lost[time]
            held[time] = self._draw(tree, like, time, held.get(left), held.get(right))
            self._store((tree.key, time), held[time])
            for parent in (left, right):
                if last_use.get(parent) == index:
                    held.pop(parent, None)
        return held[t]

    def value(self, t, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        """W(t) (a new tensor; W(t0) = 0)."""
        value = self._value(like, channel, t)
        return torch.zeros_like(like) if value is None else value.clone()

    def increment(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        w_a = self._value(like, channel, t_a)
        w_b = self._value(like, channel, t_b)
        if w_a is None:
            return torch.zeros_like(like) if w_b is None else w_b.clone()
        return -w_a if w_b is None else w_b - w_a

    def normal(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        return self.increment(t_a, t_b, like, channel).div_(sqrt_dt(t_a, t_b))


class PerSampleIncrements(NoiseSource):
    """N(0, |Δt|) draws with one generator per batch row (seeded by that row's seed), so a
    sample's noise does not depend on which other samples share its batch. Slower than
    :class:`GaussianIncrements` (one draw per row)."""

    def __init__(self, seeds):
        self.seeds = [check_seed(seed) for seed in seeds]
        self._generators: dict = {}

    def normal(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        if like.shape[0] != len(self.seeds):
            raise ValueError(f"{len(self.seeds)} seeds for a batch of {like.shape[0]}")
        rows = [torch.randn(like.shape[1:], dtype=like.dtype, device=like.device,
                            generator=_channel_generator(self._generators, like.device, seed,
                                                         channel))
                for seed in self.seeds]
        return torch.stack(rows)
