"""Image-scale exact problems (issue 28): the orthogonal image basis (colour mixing ⊗ DCT-II),
the power-law spectrum, the low-rank-plus-ε data, the pixel-space denoiser against a dense
d × d posterior mean, the marginals against the forward kernel, and a study run end to end."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from sdebench.experiments.convergence import parse_args
from sdebench.problems import get_problem
from sdebench.problems.spectrum import ImageBasis
from sdebench.studies import StudyConfig, run_study
from sdebench.theory import get_schedule

U = torch.finfo(torch.float64).eps / 2
"""The unit round-off of float64."""


def image_problem(spec: str, schedule: str = "vp"):
    return get_problem(spec, get_schedule(schedule), dim=None, seed=0)


def time_of(schedule: str, fraction: float) -> torch.Tensor:
    schedule = get_schedule(schedule)
    t = float(schedule.t_min) + fraction * float(schedule.t_max - schedule.t_min)
    return torch.tensor(t, dtype=torch.float64)


def dense_basis(res: int) -> torch.Tensor:
    """B as a d × d matrix, built independently of the fast transform: colour axes ⊗ scipy's
    orthonormal DCT-II (column (k, u, v) is the image of coefficient (k, u, v))."""
    dct = scipy.fft.dct(np.eye(res), type=2, norm="ortho", axis=0)  # D[u, i]
    colour = np.array([[1, 1, 1], [1, 1, -2], [1, -1, 0]], dtype=float).T \
        / np.sqrt([3.0, 6.0, 2.0])  # columns: luminance, yellow–blue, red–green
    return torch.from_numpy(np.kron(colour, np.kron(dct.T, dct.T)))


@pytest.mark.parametrize("res", [5, 16])
def test_the_fast_transform_is_the_dense_kronecker_basis(res):
    """B z through matrix products along each axis equals the dense C ⊗ Dᵀ ⊗ Dᵀ (scipy's DCT)
    times z: both sum the same ≤ 3 res² products of numbers below 1 in magnitude, so they differ
    by round-off, at most 3 res² u ‖z‖∞ (< 1e-12 here)."""
    z = torch.randn(4, 3 * res**2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fast = ImageBasis(res).to_images(z).flatten(1)
    dense = z @ dense_basis(res).T
    assert float((fast - dense).abs().max()) <= 3 * res**2 * U * float(z.abs().max())


@pytest.mark.parametrize("res", [4, 17, 64])
def test_the_basis_is_orthogonal(res):
    """B Bᵀ = Bᵀ B = I and ‖Bᵀx‖ = ‖x‖, applied to random images: each direction is three
    products summing ≤ res terms, so the round trip's error is ≤ ~6 res u ‖x‖∞ per entry; the
    bound 20 res u ‖x‖∞ leaves a factor 3 (a transform that is merely invertible, or scaled,
    misses it by orders of magnitude)."""
    basis = ImageBasis(res)
    images = torch.randn(3, *basis.image_shape, generator=torch.Generator().manual_seed(1),
                         dtype=torch.float64)
    coefficients = basis.to_coefficients(images)
    bound = 20 * res * U * float(images.abs().max())
    assert float((basis.to_images(coefficients) - images).abs().max()) <= bound
    assert float((basis.to_coefficients(basis.to_images(coefficients)) - coefficients).abs().max()) \
        <= bound
    norms = images.flatten(1).norm(dim=1)
    assert float(((coefficients.norm(dim=1) - norms) / norms).abs().max()) <= 20 * res * U


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_the_spectrum_is_a_power_law_with_mean_one(alpha):
    """In each colour channel λ ∝ (f² + f₀²)^(−α/2), f = √(u² + v²) of the coefficient's DCT
    indices: λ (f² + f₀²)^(α/2) is one constant per channel (to round-off of a power, 1e-13
    relative), and the least-squares slope of log λ against log f over f ≥ f_lo lies between
    the local slopes −α f²/(f² + f₀²) there, i.e. in [−α, −α f_lo²/(f_lo² + f₀²)] (here f_lo = 8,
    f₀ = 1: within 1.6 % of −α). The mean eigenvalue (tr Σ / d) is 1 to round-off, and the
    luminance channel has the largest eigenvalues."""
    res, f_lo = 32, 8.0
    eigenvalues = image_problem(f"spectrum:res={res}:alpha={alpha}").eigenvalues
    u = torch.arange(res, dtype=torch.float64)
    f = torch.sqrt(u.unsqueeze(1) ** 2 + u.unsqueeze(0) ** 2).flatten()
    chosen = f >= f_lo
    for channel in eigenvalues.reshape(3, res**2):
        scaled = channel * (f**2 + 1) ** (alpha / 2)
        assert float((scaled / scaled[0] - 1).abs().max()) <= 1e-13
        slope = np.polyfit(np.log(f[chosen].numpy()), np.log(channel[chosen].numpy()), 1)[0]
        assert -alpha - 1e-9 <= slope <= -alpha * f_lo**2 / (f_lo**2 + 1) + 1e-9
    assert abs(float(eigenvalues.mean()) - 1) <= 1e-13
    assert int(eigenvalues.reshape(3, res**2).max(1).values.argmax()) == 0


@pytest.mark.parametrize("index", [(0, 0, 0), (0, 3, 1), (1, 0, 2), (2, 5, 5)])
def test_a_dct_image_is_an_eigenvector_of_the_pixel_denoiser(index):
    """The image of coefficient (k, u, v), built by scipy's inverse DCT and the colour axis k,
    is an eigenvector of the pixel-space denoiser (mean 0) with gain λ/(λ + σ²), λ the
    eigenvalue at flat index k res² + u res + v: the pixel basis and the spectrum's ordering
    agree. Round-off: transforms of size 8, ≤ 1e-13."""
    res = 8
    problem = image_problem(f"spectrum:res={res}")
    k, u, v = index
    one_hot = np.zeros((res, res))
    one_hot[u, v] = 1
    pattern = torch.from_numpy(scipy.fft.idctn(one_hot, type=2, norm="ortho"))
    image = dense_basis(1)[:, k].reshape(3, 1, 1) * pattern  # colour axis k ⊗ the cosines
    t = time_of("vp", 0.05)
    s, sigma = problem.schedule.numeric.s(t), problem.schedule.numeric.sigma(t)
    eigenvalue = problem.eigenvalues[k * res**2 + u * res + v]
    denoised = problem.image_denoiser(s * image, t)
    assert float((denoised - eigenvalue / (eigenvalue + sigma**2) * image).abs().max()) <= 1e-13


@pytest.mark.parametrize("schedule,fraction", [("vp", 0.01), ("vp", 0.5), ("edm", 0.2)])
def test_the_image_denoiser_is_the_dense_posterior_mean(schedule, fraction):
    """On 3×4×4 images with mean 0.3: the pixel denoiser through the fast transform equals the
    dense Gaussian posterior mean μ + Σ(Σ + σ²I)⁻¹(x/s − μ), Σ = B diag(λ) Bᵀ of the dense
    Kronecker B — to within the solve's round-off, d κ u ‖x/s‖ with κ = (λ_max + σ²)/(λ_min + σ²)
    ≤ 3.5e3 (≈ 2e-11 relative; 1e-10 allowed) — and equals B applied to the eigen-coordinate
    denoiser (the study's coordinates) to round-off of two products, 1e-13."""
    res = 4
    problem = image_problem(f"spectrum:res={res}:mean=0.3", schedule)
    t = time_of(schedule, fraction)
    x = problem.sample_images(t, 5, torch.Generator().manual_seed(2))
    s, sigma = problem.schedule.numeric.s(t), problem.schedule.numeric.sigma(t)
    basis = dense_basis(res)
    covariance = basis @ torch.diag(problem.eigenvalues) @ basis.T
    mean = torch.full((3 * res**2,), 0.3, dtype=torch.float64)
    posterior = mean + torch.linalg.solve(
        covariance + sigma**2 * torch.eye(3 * res**2, dtype=torch.float64),
        covariance @ (x.flatten(1) / s - mean).T).T
    denoised = problem.image_denoiser(x, t).flatten(1)
    scale = float((x / s).abs().max())
    assert float((denoised - posterior).abs().max()) <= 1e-10 * scale
    rotated = problem.denoiser(x.flatten(1) @ basis, t) @ basis.T
    assert float((denoised - rotated).abs().max()) <= 1e-13 * scale


def test_the_image_score_is_the_gradient_of_the_log_density():
    """∇log p_t by autograd of the (eigen-coordinate) log-density, mapped to pixels by B
    (∇_x = B ∇_z), equals the pixel score from the fast transform; round-off 1e-11 of the
    score's scale (1/(s²(λ_min + σ²)) ≈ 1e2 amplifies it)."""
    problem = image_problem("spectrum:res=8:mean=-0.2")
    t = time_of("vp", 0.02)
    images = problem.sample_images(t, 3, torch.Generator().manual_seed(3))
    z = problem.basis.to_coefficients(images).requires_grad_(True)
    gradient, = torch.autograd.grad(problem.log_density(z, t).sum(), z)
    score = problem.image_score(images, t)
    expected = problem.basis.to_images(gradient)
    assert float((score - expected).abs().max()) <= 1e-11 * float(expected.abs().max())


@pytest.mark.parametrize("spec,schedule,fraction", [("spectrum:res=8:mean=0.5", "vp", 0.3),
                                                    ("spectrum:res=8:alpha=3", "edm", 0.1),
                                                    ("lowrank:res=8:k=5:eps=0.001", "vp", 0.0)])
def test_the_marginal_is_the_forward_kernel_applied_to_the_data(spec, schedule, fraction):
    """x_t = s x₀ + sσ ε with x₀ = μ + B √λ z and ε iid pixel noise has the law the problem states,
    N(sμ, s² B diag(λ + σ²) Bᵀ): its whitened coefficients (Bᵀx − s Bᵀμ)/√(s²λ + s²σ²) are iid
    N(0, 1). Kernel samples and the problem's own exact image samples, n = 4000 each: every
    coordinate's mean within 5/√n and variance within 5√(2/n) of 1, and the mean square over
    all n d entries within 5√(2/(n d)) of 1 (5 standard errors; seeded)."""
    problem = image_problem(spec, schedule)
    t = time_of(schedule, fraction)
    n, basis = 4000, problem.basis
    s, sigma = problem.schedule.numeric.s(t), problem.schedule.numeric.sigma(t)
    stream = torch.Generator().manual_seed(4)
    z = torch.randn(n, problem.dim, generator=stream, dtype=torch.float64)
    data = problem.mean_image() + basis.to_images(problem.eigenvalues.sqrt() * z)
    noise = torch.randn(n, *basis.image_shape, generator=stream, dtype=torch.float64)
    kernel = s * data + s * sigma * noise
    for images in (kernel, problem.sample_images(t, n, stream)):
        whitened = (basis.to_coefficients(images) - s * problem.mean) / problem.marginal_std_eigen(t)
        assert float(whitened.mean(0).abs().max()) <= 5 / math.sqrt(n)
        assert float((whitened.var(0) - 1).abs().max()) <= 5 * math.sqrt(2 / n)
        assert abs(float(whitened.pow(2).mean()) - 1) <= 5 * math.sqrt(2 / whitened.numel())


def test_the_low_rank_data_lie_near_the_smoothest_luminance_images():
    """λ = 1 on k directions and ε on the rest; for k = 4 the four largest of the α = 2 spectrum
    are luminance at (u, v) = (0, 0), (0, 1), (1, 0) and (1, 1): weights 1, ½, ½, ⅓ against the
    yellow–blue DC's 0.1 (ratios of (u² + v² + 1)^(−1) and the colour variances)."""
    res = 8
    problem = image_problem(f"lowrank:res={res}:k=4:eps=1e-4")
    ones = torch.nonzero(problem.eigenvalues == 1).flatten().tolist()
    assert ones == [0, 1, res, res + 1]
    assert int((problem.eigenvalues == 1e-4).sum()) == problem.dim - 4


def test_a_study_runs_end_to_end_at_res_8():
    """The study at 3×8×8 with its own defaults (dim 192, batch 2): exact W₂ and KL for an ODE
    and an SDE sampler, the strong error for the SDE one; Heun's W₂ falls by more than 2× per
    doubling of the steps (second order: 4× asymptotically)."""
    config = StudyConfig(schedules=["vp"], samplers=["heun", "euler_maruyama"], steps=[8, 16, 32],
                         problem="spectrum:res=8")
    assert (config.dim, config.batch) == (192, 2)
    results = run_study(config, progress=False, trajectories=False).results
    assert (results.status == "ok").all()
    assert set(results[results.sampler == "heun"].metric) == {"w2", "kl"}
    assert set(results[results.sampler == "euler_maruyama"].metric) == {"w2", "kl", "strong_error"}
    heun = results[(results.sampler == "heun") & (results.metric == "w2")].sort_values("steps")
    assert (heun.value.to_numpy()[:-1] / heun.value.to_numpy()[1:] > 2).all()
    assert (results.dim == 192).all()


def test_the_command_line_takes_the_problems_budget(tmp_path):
    """Without --dim, --batch, --steps an image problem sets its own (3 res², 2, 4–32); given
    options win; the other problems keep the global defaults (4, 256, 4–256)."""
    _, config, _ = parse_args(["--problem", "lowrank:res=8:k=3", "--samplers", "euler",
                               "--out", str(tmp_path)])
    assert (config.dim, config.batch, config.steps) == (192, 2, (4, 8, 16, 32))
    _, config, _ = parse_args(["--problem", "spectrum:res=8", "--samplers", "euler", "--batch",
                               "3", "--steps", "2,4", "--out", str(tmp_path / "b")])
    assert (config.dim, config.batch, config.steps) == (192, 3, (2, 4))
    _, config, _ = parse_args(["--samplers", "euler", "--out", str(tmp_path / "c")])
    assert (config.dim, config.batch, config.steps) == (4, 256, (4, 8, 16, 32, 64, 128, 256))


@pytest.mark.parametrize("spec,message", [
    ("spectrum:res=1", "res must be an integer in [2, 1024], got 1"),
    ("spectrum:res=2.5", "res must be an integer, got 2.5"),
    ("spectrum:alpha=-1", "alpha must be a finite number in [0, 8], got -1"),
    ("spectrum:f0=0", "f0 must be a finite number > 0, got 0"),
    ("spectrum:mean=nan", "mean must be a finite number, got nan"),
    ("lowrank:k=0", "k must be an integer in [1, 12288], got 0"),
    ("lowrank:res=4:k=49", "k must be an integer in [1, 48], got 49"),
    ("lowrank:eps=0", "eps must be a finite number in (0, 1), got 0"),
    ("lowrank:eps=1", "eps must be a finite number in (0, 1), got 1"),
])
def test_bad_parameters_are_named(spec, message):
    with pytest.raises(ValueError, match=f"problem '{spec.split(':')[0]}.*" + (
            message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
            .replace("]", r"\]").replace(".", r"\."))):
        image_problem(spec)


def test_a_dimension_that_is_not_the_image_size_is_refused():
    with pytest.raises(ValueError, match=r"res=8 has dimension 192 \(images 3×8×8\), got dim=5"):
        get_problem("spectrum:res=8", get_schedule("vp"), dim=5, seed=0)
    assert image_problem("spectrum:res=8").dim == 192 == get_problem(
        "spectrum:res=8", get_schedule("vp"), dim=192, seed=0).dim
