"""Model adapters: a network in diffusers', k-diffusion's or its own convention becomes the exact
denoiser when the network is exact; model problems, factories and their errors; torch.compile;
no host reads on an accelerator."""

import math

import pytest
import torch

from sdebench.problems.adapters import (
    continuous_time,
    discrete_time,
    fractional_timestep,
    karras_denoiser,
    load_model,
    network_digest,
    sample_shape,
)
from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.model import ModelProblem
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.context import FiniteMonitor
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.theory import get_schedule

# diffusers' default "linear" table: β from 1e-4 to 0.02 over 1000 steps (Ho et al. 2020, §4).
LINEAR_ALPHAS_CUMPROD = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
TABLE_LOG_SIGMAS = 0.5 * torch.log((1 - LINEAR_ALPHAS_CUMPROD) / LINEAR_ALPHAS_CUMPROD)


def _data(schedule, dim=5, seed=3) -> GaussianProblem:
    return GaussianProblem.random(get_schedule(schedule), dim, seed=seed)


class ExactDiscreteNetwork(torch.nn.Module):
    """diffusers' convention, exact for Gaussian data: at integer timestep k the input is
    √ᾱ_k x₀ + √(1−ᾱ_k) ε; it returns ε, v or x₀ of the exact posterior mean. It refuses a
    timestep off the table's nodes, so a test at the nodes checks the time map too."""

    def __init__(self, data: GaussianProblem, prediction: str):
        super().__init__()
        self.data, self.prediction = data, prediction

    def forward(self, x, timestep):
        k = timestep.round()
        assert torch.all((timestep - k).abs() < 1e-6), timestep
        alpha = LINEAR_ALPHAS_CUMPROD[k.long()][:, None]
        root_alpha, root_one_minus = alpha.sqrt(), (1 - alpha).sqrt()
        x0 = self.data.denoise_at(x, root_alpha, root_one_minus / root_alpha)
        eps = (x - root_alpha * x0) / root_one_minus
        return {"eps": eps, "v": root_alpha * eps - root_one_minus * x0, "x0": x0}[self.prediction]


def _node_times(schedule, nodes):
    """Times t with σ(t) = σ_k of the table at ``nodes`` (those inside the schedule's range)."""
    numeric = schedule.numeric
    sigmas = TABLE_LOG_SIGMAS[nodes].exp()
    return numeric.sigma_inv(sigmas)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("schedule", ["vp", "edm:sigma_min=0.02:sigma_max=80"])
def test_discrete_time_adapter_gives_the_exact_denoiser_at_the_table_nodes(schedule, prediction):
    """At times whose σ(t) is a table entry σ_k the adapter must ask the network at timestep k
    (up to round-off) with input x/(s(t)√(1+σ²)), and convert its output to x̂₀: for an exact
    network that is the exact denoiser of the schedule's own states. Tolerance: 1e-9 relative —
    the σ⁻¹ round trip and the conversions commit a few ulps, amplified by at most
    1/√(1−ᾱ) ≤ 100 at the smallest σ ≈ 0.01."""
    data = _data("vp")
    target = GaussianProblem(get_schedule(schedule), data.mean, data.eigenvalues)
    adapter = discrete_time(ExactDiscreteNetwork(data, prediction), LINEAR_ALPHAS_CUMPROD,
                            prediction)
    denoiser = adapter.denoiser_for(target.schedule)
    nodes = torch.tensor([1, 10, 50, 100, 300, 500, 800, 900, 990])
    generator = torch.Generator().manual_seed(0)
    numeric = target.schedule.numeric
    times = [t for t in _node_times(target.schedule, nodes) if numeric.t_min <= t <= numeric.t_max]
    assert len(times) >= 7  # this EDM (σ in [0.02, 80]) lacks nodes 1 (σ = 0.01) and 990
    for t in times:
        x = target.sample_marginal(t, 8, generator)
        exact = target.denoiser(x, t)
        assert torch.allclose(denoiser(x, t), exact, rtol=1e-9, atol=1e-9 * float(exact.abs().max()))


def test_fractional_timestep_is_linear_in_log_sigma_between_the_nodes():
    log_sigmas = TABLE_LOG_SIGMAS
    midpoints = 0.5 * (log_sigmas[:-1] + log_sigmas[1:])
    assert torch.allclose(fractional_timestep(midpoints, log_sigmas),
                          torch.arange(999, dtype=torch.float64) + 0.5, atol=1e-9)
    assert torch.allclose(fractional_timestep(log_sigmas, log_sigmas),
                          torch.arange(1000, dtype=torch.float64), atol=1e-9)
    sweep = torch.linspace(float(log_sigmas[0]), float(log_sigmas[-1]), 10007, dtype=torch.float64)
    steps = fractional_timestep(sweep, log_sigmas)
    assert torch.all(steps[1:] > steps[:-1])  # monotone: no jumps back at the nodes


def test_a_schedule_outside_the_table_is_refused_naming_both_ranges():
    adapter = discrete_time(lambda x, t: x, LINEAR_ALPHAS_CUMPROD)
    with pytest.raises(ValueError, match=r"spans σ ∈ \[0\.002, 80\].*table σ ∈ \[0\.01"):
        adapter.denoiser_for(get_schedule("edm"))
    for bad, message in [(LINEAR_ALPHAS_CUMPROD.flip(0), "decrease"), (torch.ones(3), "inside"),
                         (torch.tensor([0.5]), "at least 2")]:
        with pytest.raises(ValueError, match=message):
            discrete_time(lambda x, t: x, bad)


def test_karras_adapter_gives_the_exact_denoiser():
    """k-diffusion's D(y; σ) on y = x₀ + σε, fed x/s(t) and σ(t): exact on a VP schedule too.
    Tolerance: round-off of one division and the posterior mean, 1e-12 relative."""
    data = _data("vp")

    def exact_karras(y, sigma):
        return data.denoise_at(y, 1.0, sigma[:, None])

    denoiser = karras_denoiser(exact_karras).denoiser_for(data.schedule)
    generator = torch.Generator().manual_seed(1)
    for t in torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64):
        x = data.sample_marginal(t, 8, generator)
        assert torch.allclose(denoiser(x, t), data.denoiser(x, t), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_continuous_time_adapter_gives_the_exact_denoiser(prediction):
    """A network model(x, t) with per-sample t predicting ε, x₀, v or the score of the exact
    posterior (Song et al. 2021; v of Salimans & Ho 2022) converts back to the exact x̂₀."""
    data = _data("vp")
    numeric = data.schedule.numeric

    def network(x, t):
        s, sigma = numeric.s(t)[:, None], numeric.sigma(t)[:, None]
        x0 = data.denoise_at(x, s, sigma)
        eps = (x / s - x0) / sigma
        return {"x0": x0, "eps": eps, "score": -eps / (s * sigma),
                "v": (eps - sigma * x0) / torch.sqrt(1 + sigma**2)}[prediction]

    denoiser = continuous_time(network, prediction).denoiser_for(data.schedule)
    generator = torch.Generator().manual_seed(2)
    for t in torch.tensor([1e-2, 0.3, 0.9], dtype=torch.float64):
        x = data.sample_marginal(t, 8, generator)
        assert torch.allclose(denoiser(x, t), data.denoiser(x, t), rtol=1e-9, atol=1e-9)


def test_model_problem_start_law_shape_and_dtype():
    network = torch.nn.Linear(12, 12).double()
    adapter = continuous_time(lambda x, t: network(x.flatten(1)).reshape(x.shape), "eps")
    problem = ModelProblem(adapter, get_schedule("vp"), (3, 4))
    t_max = torch.tensor(1.0, dtype=torch.float64)
    start = problem.sample_marginal(t_max, 20000, torch.Generator().manual_seed(0))
    assert start.shape == (20000, 3, 4) and problem.dim == 12
    # VP: s²(1 + σ²) = 1, so the start law is N(0, I): sample variance within 5 SE (SE of a
    # variance estimate from n = 240 000 unit normals: √(2/n) ≈ 0.0029).
    assert abs(float(start.var()) - 1) < 5 * math.sqrt(2 / start.numel())
    with pytest.raises(ValueError, match="only at t_max"):
        problem.sample_marginal(torch.tensor(0.5), 4)
    with pytest.raises(ValueError, match="shape"):
        ModelProblem(adapter, get_schedule("vp"), (3, 0))
    moved = ModelProblem(continuous_time(network, "eps"), get_schedule("vp"), (12,)).to(
        dtype=torch.float32)
    assert moved.dtype == torch.float32 and network.weight.dtype == torch.float32


def _make_tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    return discrete_time(unet, LINEAR_ALPHAS_CUMPROD, "eps")  # shape: from unet.config


def tiny_unet():
    """Factory for the study below: a diffusers UNet2DModel (random weights) on 1×8×8 images."""
    return _make_tiny_unet()


@pytest.mark.peers("diffusers")
def test_a_diffusers_unet_declares_its_sample_shape():
    """No --shape needed for a diffusers 2-D UNet: (in_channels, sample_size, sample_size) from
    its config; a contradicting --shape is still refused."""
    from sdebench.problems.adapters import sample_shape

    adapter = _make_tiny_unet()
    assert sample_shape(adapter) == (1, 8, 8)
    with pytest.raises(ValueError, match="contradicts"):
        sample_shape(adapter, (1, 16, 16))


@pytest.mark.peers("diffusers")
def test_a_diffusers_unet_runs_a_reference_study(tmp_path):
    """A real diffusers network (UNet2DModel, tiny config, no download) through the discrete-time
    adapter: image-shaped states, reference-based errors that shrink with the step count, and
    rows recording the convention, weights and reference."""
    config = StudyConfig(schedules=["vp"], samplers=["euler", "heun"], steps=[4, 8, 16], batch=4,
                         model="tests.test_adapters:tiny_unet", reference="rk4@64")
    results = run_study(config, progress=False, trajectories=False).results
    assert results.status.eq("ok").all() and results.metric.eq("ref_error").all()
    for _, part in results.groupby("sampler"):
        assert part.sort_values("steps").value.is_monotonic_decreasing
    assert results.against.str.startswith("rk4@64").all()
    params = results.problem_params.iloc[0]
    assert "discrete_time(prediction=eps, steps=1000)" in params and '"shape": [1, 8, 8]' in params


def test_compiled_network_equals_eager_to_round_off():
    """--compile sends the network call through torch.compile (inductor, a C++ compiler on the
    CPU): Heun's output from 16 start points equals the eager run's to 1e-12 relative (float64;
    a fused kernel may reorder a few sums)."""
    from examples.own_model import tiny_eps_mlp

    schedule = get_schedule("vp")
    adapter = continuous_time(tiny_eps_mlp(), "eps")
    eager = ModelProblem(adapter, schedule, (8,))
    compiled = ModelProblem(adapter, schedule, (8,), compile=True)
    ts = log_snr_grid(schedule, 6)
    x = eager.sample_marginal(ts[0], 16, torch.Generator().manual_seed(0))
    a = sample(get_solver("heun"), eager.denoiser, schedule, x, ts).x
    b = sample(get_solver("heun"), compiled.denoiser, schedule, x, ts).x
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12 * float(a.abs().max()))


def _meta_adapters():
    linear = torch.nn.Linear(8, 8).double().to("meta")

    def timed(x, t):
        return linear(x) * t[:, None]

    return {"continuous_time": continuous_time(timed, "eps"),
            "karras_denoiser": karras_denoiser(timed),
            "discrete_time": discrete_time(timed, LINEAR_ALPHAS_CUMPROD)}


@pytest.mark.parametrize("name", ["continuous_time", "karras_denoiser", "discrete_time"])
def test_adapters_read_nothing_back_from_the_device(name, monkeypatch):
    """An adapter around a network on the meta device (no data: any host read raises) runs
    3 Heun steps with the deferred finite check: its time map and conversions stay on the
    device, and its table is moved there once."""
    problem = ModelProblem(_meta_adapters()[name], get_schedule("vp"), (8,), device="meta")
    monkeypatch.setattr(FiniteMonitor, "finish", lambda self: None)
    x = torch.empty(4, 8, dtype=torch.float64, device="meta")
    ts = log_snr_grid(problem.schedule, 3)
    out = sample(get_solver("heun"), problem.denoiser, problem.schedule, x, ts,
                 check_finite="end")
    assert out.x.device.type == "meta"


def test_factories_and_their_errors(tmp_path, monkeypatch):
    module = tmp_path / "nets.py"
    module.write_text(
        "import torch\n"
        "from sdebench.problems.adapters import karras_denoiser\n"
        "WEIGHTS = 3\n"
        "def plain():\n    return torch.nn.Linear(4, 4)\n"
        "def shaped():\n    net = torch.nn.Linear(4, 4); net.sample_shape = (4,); return net\n"
        "def karras():\n    return karras_denoiser(lambda x, s: x, shape=(2, 2))\n"
        "def nothing():\n    return 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_model("nets:plain").convention == "continuous_time(prediction=eps)"
    assert load_model("nets:plain", "v").convention == "continuous_time(prediction=v)"
    assert sample_shape(load_model("nets:shaped")) == (4,)
    assert sample_shape(load_model("nets:karras")) == (2, 2)
    assert sample_shape(load_model("nets:plain"), (4,)) == (4,)
    with pytest.raises(ValueError, match="--shape"):
        sample_shape(load_model("nets:plain"))
    with pytest.raises(ValueError, match="contradicts"):
        load_model("nets:karras", "eps")
    with pytest.raises(TypeError, match="factory function"):
        load_model("nets:WEIGHTS")
    with pytest.raises(TypeError, match="returned int"):
        load_model("nets:nothing")
    with pytest.raises(ValueError, match="prediction"):
        load_model("nets:plain", "noise")


def test_the_weights_digest_follows_the_weights():
    torch.manual_seed(0)
    first = torch.nn.Linear(3, 3)
    same = torch.nn.Linear(3, 3)
    same.load_state_dict(first.state_dict())
    assert network_digest(first) == network_digest(same)
    with torch.no_grad():
        same.bias[0] = torch.nextafter(same.bias[0], torch.tensor(math.inf))  # one ulp
    assert network_digest(first) != network_digest(same)
    assert network_digest(lambda x, t: x) == "unhashed"


@pytest.mark.parametrize("spec, message", [
    ("examples/own_model.py", "names a file but no factory"),
    ("missing_file.py:make", "the file 'missing_file.py' does not exist"),
    ("tests", "is a directory: expected module:factory"),
])
def test_a_model_spec_that_names_no_factory_says_what_it_lacks(spec, message):
    with pytest.raises(ValueError, match=message):
        load_model(spec)


def test_a_checkpoint_folder_points_at_its_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="did you mean .*checkpoint.pt"):
        load_model(str(tmp_path))


def test_a_network_that_cannot_take_the_shape_is_refused_before_any_unit():
    """examples/own_model.py's network takes 8-D states (it declares sample_shape = (8,)); --shape
    3 fails at the study's start, naming both shapes, instead of as every unit's failed row.
    (A network that declares no shape and rejects the states: tests/test_model_contract.py.)"""
    config = StudyConfig(schedules=["vp"], samplers=["euler"], steps=[4, 8],
                         model="examples/own_model.py:tiny_eps_mlp", shape=(3,))
    with pytest.raises(ValueError, match=r"shape \(3,\) \(--shape\) contradicts the sample shape "
                                         r"\(8,\)"):
        run_study(config, progress=False)
