"""Derivation steps of notes 000 and 003 that do not follow, though the results they reach are
right (theory/ERRATA.md 17–20): for each, a counterexample or the exact algebra, and the
argument that does establish the result."""

import sympy as sp

t, h, c = sp.symbols("t h c", positive=True)
x, y = sp.symbols("x y", real=True)
s, sigma = sp.Function("s")(t), sp.Function("sigma")(t)


def test_note000_marginals_do_not_fix_the_reverse_drift_in_2d():
    """Note 000 §2.2 drops ∇· from ∇·(f̃ p) = ∇·[(−f + g²∇log p) p]. In 2-D the flux is fixed
    only up to a divergence-free field: for the stationary OU process (f = −x/2, g = 1,
    p = N(0, I)) the drift −x/2 + c(−y, x) solves the same Fokker–Planck equation for every c,
    yet its two-time law (transition mean e^{A h}) is not the time reversal's, e^{−h/2} I. The
    reverse drift is fixed by the path law (Anderson 1982), not by the marginals."""
    p = sp.exp(-(x**2 + y**2) / 2) / (2 * sp.pi)

    def stationary_residual(drift):
        flux = sp.diff(drift[0] * p, x) + sp.diff(drift[1] * p, y)
        return sp.simplify(-flux + (sp.diff(p, x, 2) + sp.diff(p, y, 2)) / 2)

    note = sp.Matrix([-x / 2, -y / 2])
    rotated = note + c * sp.Matrix([-y, x])
    assert stationary_residual(note) == 0 and stationary_residual(rotated) == 0
    transition = (sp.Matrix([[-sp.Rational(1, 2), -c], [c, -sp.Rational(1, 2)]]) * h).exp()
    difference = sp.simplify(transition - sp.exp(-h / 2) * sp.eye(2))
    assert difference != sp.zeros(2, 2)
    assert sp.simplify(difference.subs(c, 0)) == sp.zeros(2, 2)


def test_note003_line79_does_not_follow_from_line78():
    """Line 78: g² = d(s²σ²)/dt − ṡ²σ² (the ṡ²σ²Δt² term kept without its Δt); line 79:
    2sσ(ṡσ + sσ̇) − 2ṡsσ². They differ by ṡσ²(2s − ṡ). Line 79's value is right: the kernel
    variance v = s²σ² of dx = f x dt + g dw solves v̇ = 2 f v + g² with f = ṡ/s, so
    g² = v̇ − 2ṡsσ² = 2s²σσ̇ (the −2ṡsσ² is the 2fv term the note never derives)."""
    s_dot, sigma_dot = sp.diff(s, t), sp.diff(sigma, t)
    line78 = sp.diff(s**2 * sigma**2, t) - s_dot**2 * sigma**2
    line79 = 2 * s * sigma * (s_dot * sigma + s * sigma_dot) - 2 * s_dot * s * sigma**2
    assert sp.simplify(line78 - line79 - s_dot * sigma**2 * (2 * s - s_dot)) == 0
    assert sp.simplify(line78 - line79) != 0
    variance = s**2 * sigma**2
    assert sp.simplify(sp.diff(variance, t) - 2 * (s_dot / s) * variance - line79) == 0


def test_note003_line70_noise_combination_is_wrong():
    """Line 69: (a/s) x_t + (√A − aσ) ε; line 70: (a/s) x_t − √(A − a²σ²) ε, with
    a = s' − s, A = s'²σ'² − s²σ². Neither one shared ε (coefficient √A − aσ) nor independent
    ε's (variance A + a²σ²) gives it (exact counterexamples below), and carried to the limit it
    gives g² = d(s²σ²)/dt, which violates the variance ODE by −2ṡsσ² (e.g. negative for
    s = e^{−t}, σ = t at t > 1). The Markov increment x' = (s'/s) x + s'√(σ'² − σ²) ε_new does
    give g² = 2s²σσ̇ (previous test)."""
    def coefficients(s0, s1, q0, q1):
        a, big_a = s1 - s0, s1**2 * q1**2 - s0**2 * q0**2
        return sp.sqrt(big_a) - a * q0, -sp.sqrt(big_a - a**2 * q0**2)

    line69, line70 = coefficients(1, 1, 1, 2)
    assert sp.simplify(line69 - line70) != 0  # +√3 versus −√3
    line69, line70 = coefficients(1, 2, 1, 1)
    assert sp.simplify(line69**2 - line70**2) != 0  # (√3 − 1)² versus 2
    s_dot = sp.diff(s, t)
    variance = s**2 * sigma**2
    note_g2 = sp.diff(variance, t)
    assert sp.simplify(sp.diff(variance, t) - 2 * (s_dot / s) * variance - note_g2
                       + 2 * s_dot * s * sigma**2) == 0
    example = (-2 * sp.diff(s, t) * s * sigma**2).subs({s: sp.exp(-t), sigma: t}).doit()
    assert sp.simplify(example - 2 * t**2 * sp.exp(-2 * t)) == 0  # ≠ 0: line 70's g² is wrong


def test_note003_reverse_kernel_mean_sign():
    """Line 117's exponent −‖x_t − x_{t+Δ} + mΔ‖²/(2g²Δ), m = f x − g²∇log p, peaks at
    x_{t+Δ} − mΔ; line 121 writes N(x_t; x_{t+Δ} + mΔ, g²Δ I). Exact check for f = 0, g = 1,
    p_t = N(0, 1 + t): E[x_t | x_{t+Δ} = y] = (1 + t) y/(1 + t + Δ) = y − mΔ exactly, and
    y + mΔ is off by 2Δy/(1 + t + Δ). Line 126 (dx = m dt with dt < 0) uses the right sign."""
    delta = sp.symbols("Delta", positive=True)
    m = sp.symbols("m", real=True)
    assert sp.solve(sp.diff(-(x - y + m * delta) ** 2 / (2 * delta), x), x) == [y - delta * m]
    exact = (1 + t) * y / (1 + t + delta)
    drift = y / (1 + t + delta)  # f x − g² ∇log p_{t+Δ}(y) = 0 + y/(1 + t + Δ)
    assert sp.simplify(exact - (y - drift * delta)) == 0
    assert sp.simplify(exact - (y + drift * delta)) != 0
