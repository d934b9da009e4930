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
* :class:`BrownianTree`: a virtual Brownian tree (Gaines & Lyons 1997; Li et al. 2020, torchsde):
  the same path at *any* time asked for, in bounded memory (adaptive steps, unplanned queries),
  for up to ``max_depth`` normals per new query time.
"""

from __future__ import annotations

import math
from collections import OrderedDict

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


class BrownianTree(NoiseSource):
    """W on [t0, t1] defined by Brownian-bridge midpoints, each drawn from its own seeded stream.

    W(t) for any t: descend the dyadic tree of [t0, t1] to the interval around t; midpoints
    W(m) = ½(W(a) + W(b)) + ½√(b − a) z_node. Below depth ``max_depth`` (2⁻²⁴ ≈ 6·10⁻⁸ of the
    span, far below any solver step) the path is the bridge mean, i.e. linear: continuous in t,
    so nearby query times get nearby values. Grid points of dyadic grids are tree nodes, so their
    values are exact. Nodes are kept in an LRU cache of ``cache_size`` state-sized tensors (the
    root levels, used by every query, stay); an evicted node is recomputed bit for bit from its
    seed, so the bound costs time, never consistency.
    """

    def __init__(self, t0: float, t1: float, seed: int = 0, max_depth: int = 24,
                 cache_size: int = 128):
        if not t0 < t1:
            raise ValueError(f"BrownianTree needs t0 < t1, got [{t0}, {t1}]")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.t0, self.t1, self.seed, self.max_depth = float(t0), float(t1), check_seed(seed), max_depth
        self.cache_size = cache_size
        self._key = derive_seed(self.seed, "brownian_tree")
        self._cache: OrderedDict = OrderedDict()

    def _normal(self, like, channel, depth, index) -> torch.Tensor:
        node_seed = hash((self._key, channel, depth, index)) % (2**62)
        generator = torch.Generator(device=like.device).manual_seed(node_seed)
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)

    @property
    def cached_nodes(self) -> int:
        return len(self._cache)

    def _cached(self, like, channel, depth, index, compute) -> torch.Tensor:
        key = (channel, depth, index, tuple(like.shape), like.dtype, str(like.device))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._cache[key] = compute()
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value

    def value(self, t: float, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        """W(t) (W(t0) = 0): descend from [t0, t1] carrying the interval's end values, one
        midpoint (a cached node) per level, to the dyadic point t or to depth ``max_depth``."""
        t = float(t)
        span = self.t1 - self.t0
        if not self.t0 - 1e-12 * span <= t <= self.t1 + 1e-12 * span:
            raise ValueError(f"time {t} outside the Brownian tree's [{self.t0}, {self.t1}]")
        u = min(max((t - self.t0) / span, 0.0), 1.0)
        left = torch.zeros(like.shape, dtype=like.dtype, device=like.device)
        right = self._cached(like, channel, 0, 1, lambda: self._normal(like, channel, 0, 1)
                             * math.sqrt(span))
        index = 0  # the interval at depth d is [index, index + 1] · span / 2^d
        for depth in range(self.max_depth + 1):
            scaled = u * 2**depth
            if abs(scaled - index) <= 1e-9:
                return left
            if abs(scaled - (index + 1)) <= 1e-9:
                return right
            if depth == self.max_depth:
                weight = scaled - index
                return (1 - weight) * left + weight * right
            width = span / 2**depth
            mid = self._cached(
                like, channel, depth + 1, 2 * index + 1,
                lambda left=left, right=right, width=width, depth=depth, index=index: (
                    0.5 * (left + right)
                    + 0.5 * math.sqrt(width) * self._normal(like, channel, depth + 1, 2 * index + 1)),
            )
            if 2 * scaled < 2 * index + 1:
                index, right = 2 * index, mid
            else:
                index, left = 2 * index + 1, mid
        raise AssertionError("unreachable: the loop returns at max_depth")

    def increment(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        return self.value(t_b, like, channel) - self.value(t_a, like, channel)

    def normal(self, t_a, t_b, like: torch.Tensor, channel: int = 0) -> torch.Tensor:
        return self.increment(t_a, t_b, like, channel) / sqrt_dt(t_a, t_b)


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
