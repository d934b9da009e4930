"""Brownian paths: BrownianGrid (declared times, drawn once) and BrownianTree (drawn on-line at the
times asked for): the exact law of Brownian motion, one path at every resolution, reproducible
streams, independent channels, and the tree's cost counted in normals drawn. Monte Carlo checks
use n = 20 000 independent motions (the elements of one seeded path), so their outcome is fixed;
each bound is 4 standard errors of the statistic (a false alarm has probability < 1e-4 per
check for an unseeded draw)."""

import math

import pytest
import torch

from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.grids import uniform_t_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import BrownianGrid, BrownianTree
from tests.helpers import fitted_order, vp_problem

N = 20_000
TIMES = [0.0, 0.1, 0.35, 0.7, 1.0]
TREE_ORDER = [0.7, 0.1, 0.35, 1.0]
"""Query order for the tree: W(1) (the root) and W(0.7) bridged in (0, 1), W(0.1) in (0, 0.7),
W(0.35) in (0.1, 0.7): bridges between two drawn values, not only from W(0) = 0."""


@pytest.fixture(scope="module", params=["grid", "tree"])
def values(request):
    """W(t) at TIMES for N independent paths (W(0) = 0), from either source."""
    like = torch.zeros(N, 1, dtype=torch.float64)
    if request.param == "grid":
        source, order = BrownianGrid(TIMES, seed=17), TIMES[1:]
    else:
        source, order = BrownianTree(0.0, 1.0, seed=17), TREE_ORDER
    return {t: source.increment(0.0, t, like)[:, 0] for t in order}


def test_marginals_are_n_0_t(values):
    for t, w in values.items():
        assert abs(float(w.mean())) <= 4 * math.sqrt(t / N), t  # SE of the mean: √(t/N)
        # SE of the sample variance of N(0, t): t √(2/(N − 1))
        assert abs(float(w.var()) - t) <= 4 * t * math.sqrt(2 / (N - 1)), t


def test_covariances_are_min_s_t(values):
    """Cov(W(s), W(t)) = min(s, t); the SE of the sample covariance of jointly Gaussian X, Y is
    √((Var X Var Y + Cov²)/N) = √((s t + s²)/N) for s < t."""
    for s in TIMES[1:]:
        for t in TIMES[1:]:
            if s < t:
                covariance = float((values[s] * values[t]).mean())
                assert abs(covariance - s) <= 4 * math.sqrt((s * t + s * s) / N), (s, t)


def test_disjoint_increments_are_uncorrelated(values):
    """Sample correlation of independent variables has SE ≈ 1/√N."""
    first = values[0.1]
    later = values[0.7] - values[0.35]
    correlation = float(torch.corrcoef(torch.stack([first, later]))[0, 1])
    assert abs(correlation) <= 4 / math.sqrt(N)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("source", ["grid", "tree, coarse first", "tree, fine first"])
def test_coarse_increments_are_sums_of_fine_ones(source, dtype):
    fine = torch.linspace(1.0, 0.0, 65, dtype=torch.float64)
    path = BrownianGrid(fine, seed=3) if source == "grid" else BrownianTree(0.0, 1.0, seed=3)
    like = torch.zeros(100, 3, dtype=dtype)

    def increment(k, j):
        return path.increment(fine[k].to(dtype), fine[j].to(dtype), like)

    if source == "tree, fine first":  # the fine times drawn first, the coarse ones among them
        for k in range(64):
            increment(k, k + 1)
    for start in range(0, 64, 8):  # coarse step = 8 fine steps, as the study's reference grid
        coarse = increment(start, start + 8)
        summed = sum(increment(k, k + 1) for k in range(start, start + 8))
        # round-off of the prefix sums: a few ulps of |W| ≤ 5 (5 SD of W(1))
        torch.testing.assert_close(coarse, summed, rtol=0, atol=40 * torch.finfo(dtype).eps)


def test_per_sample_streams_do_not_depend_on_batch_mates():
    seeds = list(range(50, 56))
    times = [0.0, 0.25, 0.5, 1.0]
    whole = BrownianGrid(times, seeds=seeds).increment(1.0, 0.25, torch.zeros(6, 2))
    part = BrownianGrid(times, seeds=seeds[2:]).increment(1.0, 0.25, torch.zeros(4, 2))
    torch.testing.assert_close(part, whole[2:], rtol=0, atol=0)


def test_undeclared_times_are_refused():
    grid = BrownianGrid([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="0.3 is not one of the BrownianGrid's declared times"):
        grid.increment(0.5, 0.3, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="at least two distinct"):
        BrownianGrid([0.5, 0.5])


def test_euler_maruyama_strong_order_on_a_brownian_grid():
    """The strong-order test of tests/test_solver_orders.py (VP, d = 2, M = 256 paths, N = 16…128
    against 2048 steps, tolerance 0.15 from the ≈ 6 % standard error of each mean) with the
    path drawn once on the union of all grids instead of a tree."""
    problem = vp_problem(dim=2, seed=3)
    schedule = problem.schedule
    steps = [16, 32, 64, 128]
    grids = {n: uniform_t_grid(schedule, n) for n in [*steps, 2048]}
    path = BrownianGrid(torch.cat(list(grids.values())), seed=11)
    x_start = problem.sample_marginal(grids[16][0], 256, torch.Generator().manual_seed(0))

    def solve(n):
        return sample(get_solver("euler_maruyama"), problem.denoiser, schedule, x_start, grids[n],
                      noise=path).x

    reference = solve(2048)
    errors = [float((solve(n) - reference).norm(dim=1).mean()) for n in steps]
    assert abs(fitted_order(steps, errors) - 1.0) <= 0.15, errors


def test_tree_bridge_has_the_brownian_bridge_law():
    """W(0.3) drawn between W(0.25) and W(0.5): the residual R = W(0.3) − W(0.25) − ⅕(W(0.5) −
    W(0.25)) of the Brownian bridge has variance (t − l)(r − t)/(r − l) = 0.05·0.2/0.25 = 0.04 and
    is independent of both ends (Glasserman 2004, §3.1). SEs: the sample variance's 0.04·√(2/(N − 1)),
    a sample correlation's 1/√N."""
    tree = BrownianTree(0.0, 1.0, seed=23)
    like = torch.zeros(N, 1, dtype=torch.float64)
    right, left, middle = (tree.increment(0.0, t, like)[:, 0] for t in (0.5, 0.25, 0.3))
    residual = middle - left - 0.2 * (right - left)
    assert abs(float(residual.var()) - 0.04) <= 4 * 0.04 * math.sqrt(2 / (N - 1))
    for end in (left, right):
        assert abs(float(torch.corrcoef(torch.stack([residual, end]))[0, 1])) <= 4 / math.sqrt(N)


def test_tree_is_reproducible_from_its_seed_and_query_order():
    queries = [(1.0, 0.6), (0.6, 0.2), (0.2, 0.45), (0.9, 0.1)]
    like = torch.zeros(50, 2, dtype=torch.float64)

    def increments(seed):
        tree = BrownianTree(0.0, 1.0, seed=seed)
        return torch.stack([tree.increment(t_a, t_b, like) for t_a, t_b in queries])

    torch.testing.assert_close(increments(4), increments(4), rtol=0, atol=0)
    assert not torch.equal(increments(4), increments(5))


def test_tree_channels_are_independent_motions():
    """Channels 0 and 1 over one step: sample correlation within 4/√N of 0; and channel 1's path
    does not depend on what was asked of channel 0."""
    like = torch.zeros(N, 1, dtype=torch.float64)
    tree = BrownianTree(0.0, 1.0, seed=2)
    tree.increment(0.0, 0.3, like, channel=0)
    first = tree.increment(0.0, 0.6, like, channel=0)[:, 0]
    second = tree.increment(0.0, 0.6, like, channel=1)[:, 0]
    assert abs(float(torch.corrcoef(torch.stack([first, second]))[0, 1])) <= 4 / math.sqrt(N)
    alone = BrownianTree(0.0, 1.0, seed=2).increment(0.0, 0.6, like, channel=1)[:, 0]
    torch.testing.assert_close(second, alone, rtol=0, atol=0)


REVERSE_TIMES = [1.0 - (k / 64) ** 1.5 for k in range(65)]
"""A 64-step grid from t1 = 1 to t0 = 0 with non-dyadic times (a sampler's reverse-time order)."""


@pytest.mark.parametrize("cache_size", [3, 128])
@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_sequential_queries_draw_one_normal_per_new_time(direction, cache_size):
    """A pass over a 64-step grid draws one normal per time other than t0 (the virtual dyadic tree
    drew up to 24), also with 3 cached values (the step's end and its bridge's ends). A second
    pass draws none where the cache holds the pass; with 3 cached values it recomputes each
    evicted value once, in pass order (its parent was just recomputed): at most 64 again."""
    times = REVERSE_TIMES if direction == "reverse" else REVERSE_TIMES[::-1]
    tree = BrownianTree(0.0, 1.0, seed=1, cache_size=cache_size)
    like = torch.zeros(8, 3)

    def one_pass():
        for t_a, t_b in zip(times[:-1], times[1:], strict=True):
            tree.normal(t_a, t_b, like)
            assert tree.cached_nodes <= cache_size

    one_pass()
    assert tree.normals_drawn == 64
    one_pass()
    if cache_size > 64:
        assert tree.normals_drawn == 64
    else:
        assert 64 < tree.normals_drawn <= 2 * 64


def test_a_rejected_step_is_refined_on_the_same_path():
    """An adaptive solver's retry: [1, 0.5] asked (root and W(0.5): 2 normals), rejected, then
    [1, 0.75] (1 new time) and [0.75, 0.5] (none): the halves sum to the rejected step's
    increment (round-off: a few ulps of |W| ≤ 5)."""
    tree = BrownianTree(0.0, 1.0, seed=9)
    like = torch.zeros(1000, 2, dtype=torch.float64)
    rejected = tree.increment(1.0, 0.5, like)
    assert tree.normals_drawn == 2
    halves = tree.increment(1.0, 0.75, like) + tree.increment(0.75, 0.5, like)
    assert tree.normals_drawn == 3
    torch.testing.assert_close(halves, rejected, rtol=0, atol=40 * torch.finfo(torch.float64).eps)


def test_evicted_values_are_recomputed_bit_for_bit_from_their_ancestors():
    """With 3 cached values, W at the 10th time of a finished reverse pass was evicted: asking for
    it again redraws exactly its lost ancestors — times 1…9 of the pass and the root W(1) — and
    itself, 11 normals, to the same bits as a tree that kept everything."""
    small = BrownianTree(0.0, 1.0, seed=6, cache_size=3)
    large = BrownianTree(0.0, 1.0, seed=6, cache_size=128)
    like = torch.zeros(16, 2, dtype=torch.float64)
    for t_a, t_b in zip(REVERSE_TIMES[:-1], REVERSE_TIMES[1:], strict=True):
        torch.testing.assert_close(small.increment(t_a, t_b, like),
                                   large.increment(t_a, t_b, like), rtol=0, atol=0)
    drawn = small.normals_drawn
    torch.testing.assert_close(small.value(REVERSE_TIMES[10], like),
                               large.value(REVERSE_TIMES[10], like), rtol=0, atol=0)
    assert small.normals_drawn - drawn == 11
    assert small.cached_nodes <= 3


def test_tree_refuses_bad_input_and_takes_a_rounded_end_as_the_end():
    tree = BrownianTree(0.1, 0.3)
    like = torch.zeros(4, 1)
    with pytest.raises(ValueError, match=r"time 1.2 outside the Brownian tree's \[0.1, 0.3\]"):
        tree.increment(0.2, 1.2, like)
    with pytest.raises(ValueError, match="t0 < t1"):
        BrownianTree(1.0, 1.0)
    with pytest.raises(ValueError, match="cache_size must be >= 1"):
        BrownianTree(0.0, 1.0, cache_size=0)
    # float32(0.3) = 0.30000001…, outside by one float32 ulp: the end t1 itself
    end = torch.tensor(0.3, dtype=torch.float32)
    torch.testing.assert_close(tree.value(end, like), tree.value(0.3, like), rtol=0, atol=0)


@pytest.mark.peers
def test_peers_brownian_rows_time_every_path_beside_plain_increments(capsys):
    """experiments/peers.py --brownian at a toy size: plain increments and the three paths, each
    with reverse_diffusion's 3 model calls and its per-round ratio to plain (plain's own is 1)."""
    from sdebench.experiments import peers

    assert peers.main(["--dim", "16", "--batch", "8", "--steps", "3", "--repeat", "1", "--quiet",
                       "--brownian"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("sdebench")]
    # columns: library, sampler (words), stochastic, nfe, wall_s, spread, floor_ratio, vs_plain
    assert [" ".join(row[1:-6]) for row in rows] == [
        "reverse_diffusion", "reverse_diffusion (Brownian grid)",
        "reverse_diffusion (Brownian tree)", "reverse_diffusion (torchsde BrownianInterval)"]
    assert all(row[-5] == "3" for row in rows) and rows[0][-1] == "1.000"
