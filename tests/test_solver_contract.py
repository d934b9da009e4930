"""The solver contract is declared once and checked: declarations on subclassing, tableau orders
against Butcher's conditions, solver objects (not names) into sample()."""

import math

import pytest

from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.runge_kutta import DORMAND_PRINCE, RK4, Tableau, achieved_order, rooted_trees
from sdebench.solvers.solver import Solver
from tests.helpers import vp_problem


def test_rooted_tree_counts():
    """1, 1, 2, 4, 9, 20 rooted trees with 1…6 nodes (OEIS A000081; Butcher 2016, Table 300(I))."""
    assert [len(rooted_trees(n)) for n in range(1, 7)] == [1, 1, 2, 4, 9, 20]


def test_tableaus_achieve_exactly_their_order():
    import numpy as np

    assert achieved_order(RK4.matrix, np.asarray(RK4.b)) == 4
    assert achieved_order(DORMAND_PRINCE.matrix, np.asarray(DORMAND_PRINCE.b)) == 5
    embedded = np.asarray(DORMAND_PRINCE.b) - np.asarray(DORMAND_PRINCE.error_weights)
    assert achieved_order(DORMAND_PRINCE.matrix, embedded) == 4


@pytest.mark.parametrize("order", [1, 3, 5])
def test_a_tableau_cannot_claim_another_order(order):
    with pytest.raises(ValueError, match=f"declares order {order} but .* up to order 4"):
        Tableau("rk4?", RK4.c, RK4.a, RK4.b, order=order)


def test_a_tableau_with_inconsistent_rows_is_refused():
    with pytest.raises(ValueError, match="row 1 of a sums to"):
        Tableau("bad", c=(0.0, 0.5), a=((), (1.0,)), b=(0.5, 0.5), order=2)


def test_declarations_are_checked_when_the_class_is_made():
    with pytest.raises(TypeError, match="must declare order"):
        class NoOrder(Solver):
            strong_order, nfe_per_step, stochastic = None, 1, False

            def step(self, ctx, x, t_cur, t_next, state):
                return x, state
    with pytest.raises(TypeError, match="declares a strong order but is not stochastic"):
        class Strong(Solver):
            order, strong_order, nfe_per_step, stochastic = 1, 1, 1, False

            def step(self, ctx, x, t_cur, t_next, state):
                return x, state
    with pytest.raises(TypeError, match="order_note must say why"):
        class Silent(Solver):
            order, strong_order, nfe_per_step, stochastic = None, None, 1, False

            def step(self, ctx, x, t_cur, t_next, state):
                return x, state
    with pytest.raises(TypeError, match="must implement step"):
        class Stepless(Solver):
            order, strong_order, nfe_per_step, stochastic = 1, None, 1, False


def test_duck_typed_solvers_are_checked_when_sampling():
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 2)
    x = problem.sample_marginal(ts[0], 3)

    class Partial:
        order, nfe_per_step, stochastic = 1, 1, False

        def step(self, ctx, x, t_cur, t_next, state):
            return x, state

    with pytest.raises(TypeError, match="must declare strong_order"):
        sample(Partial(), problem.denoiser, problem.schedule, x, ts)
    with pytest.raises(TypeError, match="not a solver"):
        sample("euler", problem.denoiser, problem.schedule, x, ts)


@pytest.mark.parametrize("name", BUILTIN_SAMPLERS)
def test_catalogue_solvers_record_their_parameters(name):
    """Constructor parameters are attributes of the same name (recorded with every result)."""
    solver = get_solver(name)
    parameters = solver.parameters()
    assert all(not callable(value) for value in parameters.values())
    assert repr(solver).startswith(type(solver).__name__)
    assert solver.nfe_per_step > 0 or math.isnan(solver.nfe_per_step)


def test_sampler_specs_take_parameters():
    assert get_solver("ddim:eta=0.3").eta == 0.3 and get_solver("ddim:eta=0.3").stochastic
    assert get_solver("pc:n_corrector=2").nfe_per_step == 3
    with pytest.raises(ValueError, match="takes no parameter 'rho'"):
        get_solver("heun:rho=2")
    with pytest.raises(ValueError, match="eta must be in"):
        get_solver("ddim:eta=2")
