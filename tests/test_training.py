"""DSM training: the weightings are the score-matching weightings they claim to be, runs resume bit
for bit, checkpoints load through the model adapters, and a learned-score study shows the
score-error floor beside the exact score."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sdebench.problems.adapters import continuous_time, load_model
from sdebench.problems.catalogue import get_problem
from sdebench.problems.model import LearnedScoreProblem
from sdebench.reports.html import StudyFrames, render_report
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.learned import score_error_frame
from sdebench.theory import get_schedule
from sdebench.training.dsm import x0_weight
from sdebench.training.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = TrainConfig(data="gmm", dim=2, steps=30, batch=64, width=16, depth=2, checkpoint_every=10,
                    dtype="float64")


def _random_times_and_data(numeric):
    """64 times uniform on the schedule's range, and x₀, ε, x̂₀ ~ N(0, I) in d = 3 (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    t = numeric.t_min + (numeric.t_max - numeric.t_min) * torch.rand(
        64, generator=generator, dtype=torch.float64)
    x0, eps, x0_hat = (torch.randn(64, 3, generator=generator, dtype=torch.float64)
                       for _ in range(3))
    return t, x0, eps, x0_hat


@pytest.mark.parametrize("schedule", ["vp", "ve", "edm"])
def test_weightings_are_the_score_matching_weightings_they_claim(schedule):
    """For random x̂₀: simple = ‖ε̂ − ε‖² (Ho et al.'s L_simple) = s²σ² ‖ŝ − ∇log p(x_t|x₀)‖²;
    likelihood = g² ‖ŝ − ∇log p(x_t|x₀)‖², with ŝ = (s x̂₀ − x_t)/(s²σ²) (Tweedie) and
    ∇log p(x_t|x₀) = −ε/(sσ). Identities: equal to 1e-10 relative (round-off of a few ops)."""
    sched = get_schedule(schedule)
    numeric = sched.numeric
    t, x0, eps, x0_hat = _random_times_and_data(numeric)
    s, sigma = numeric.s(t)[:, None], numeric.sigma(t)[:, None]
    x_t = s * (x0 + sigma * eps)
    eps_hat = (x_t / s - x0_hat) / sigma
    score_hat = (s * x0_hat - x_t) / (s**2 * sigma**2)
    score_error = (score_hat + eps / (s * sigma)).pow(2).sum(1)
    x0_error = (x0_hat - x0).pow(2).sum(1)
    checks = {"simple": (eps_hat - eps).pow(2).sum(1),
              "likelihood": numeric.g2(t) * score_error}
    assert torch.allclose(checks["simple"], (s * sigma).squeeze(1) ** 2 * score_error, rtol=1e-10)
    for weighting, expected in checks.items():
        assert torch.allclose(x0_weight(weighting, sched, t) * x0_error, expected, rtol=1e-10)


@pytest.mark.parametrize("schedule", ["rf", "rf:shift=3", "vp0snr"])
def test_flow_weighting_is_the_conditional_flow_matching_loss(schedule):
    """flow: w ‖x̂₀ − x₀‖² = ‖v̂ − (ε − x₀)‖² (Lipman et al. 2023, eq. 23) with v̂ the v_flow
    prediction of x̂₀ (x_t = s x₀ + sσ ε); an identity, to 1e-10 relative."""
    sched = get_schedule(schedule)
    numeric = sched.numeric
    t, x0, eps, x0_hat = _random_times_and_data(numeric)
    s, std = numeric.s(t)[:, None], numeric.kernel_std(t)[:, None]
    x_t = s * x0 + std * eps
    eps_hat = (x_t - s * x0_hat) / std
    expected = ((eps_hat - x0_hat) - (eps - x0)).pow(2).sum(1)
    got = x0_weight("flow", sched, t) * (x0_hat - x0).pow(2).sum(1)
    assert torch.allclose(got, expected, rtol=1e-10)


def test_the_exact_flow_velocity_has_no_score_error_up_to_pure_noise():
    """On rf the score-error times reach t = 1 (uniform in t), where e = 0 and the integrand's
    limit is 0: an exact v_flow 'network' gives e(t) = 0 everywhere and a finite bound of 0."""
    schedule = get_schedule("rf")
    truth = get_problem("gmm", schedule, dim=2, seed=0)
    to_velocity = schedule.numeric.conversion("x0", "v_flow")
    exact = continuous_time(lambda x, t: to_velocity(x, truth.denoiser(x, t[0]), t[0]), "v_flow",
                            shape=(2,))
    frame = score_error_frame(LearnedScoreProblem(truth, exact), seed=0, times=6, samples=64)
    # round-off only: the x̂₀ → v → x̂₀ round trip is off by ≲ 4u|x| (|x| ≲ 3 here), and e weighs
    # it by (s/(sσ)²)² ≤ 1/t_min⁴ = 10¹², in d = 2: e ≤ 2 (4 u · 3 · 10⁶)² ≈ 3.5e-18
    bound = 2 * (4 * torch.finfo(torch.float64).eps / 2 * 3 * 1e6) ** 2
    assert frame.score_error.max() <= bound and frame.score_error.iloc[-1] == 0
    # ½ Σ w g² e with Σ w ≤ 1 and g² = 2t/(1 − t) ≤ 8 at the interior times (t ≤ 0.8); the t = 1
    # row adds its limit 0, not ∞ · 0
    assert 0 <= frame.bound.iloc[0] <= 4 * bound


def test_training_resumes_bit_for_bit(tmp_path):
    """30 steps in one run equal 15 steps, a stop and a resume to 30 (CPU, float64): every
    batch, time and noise comes from a stream keyed by (seed, step)."""
    straight = train(SMALL, tmp_path / "straight", progress=False)
    train(replace(SMALL, steps=15), tmp_path / "resumed", progress=False)
    resumed = train(SMALL, tmp_path / "resumed", progress=False)
    assert straight["losses"] == resumed["losses"] and len(resumed["losses"]) == 30
    for name, tensor in straight["network"]["state"].items():
        assert torch.equal(tensor, resumed["network"]["state"][name]), name


def test_a_checkpoint_made_with_other_settings_is_refused(tmp_path):
    train(SMALL, tmp_path, progress=False)
    with pytest.raises(ValueError, match="other settings \\(weighting\\)"):
        train(replace(SMALL, weighting="likelihood"), tmp_path, progress=False)
    for bad, message in [(dict(prediction="noise"), "prediction"), (dict(weighting="nope"),
                         "weighting"), (dict(steps=0), "steps"), (dict(schedule="nope"), "nope"),
                         (dict(learning_rate=-1.0), "learning_rate")]:
        with pytest.raises(Exception, match=message):
            TrainConfig(**bad)


def test_the_exact_score_has_no_score_error():
    """Negative control for e(t): a 'network' returning the exact x̂₀ gives e(t) = 0 at every
    time and a bound of 0."""
    truth = get_problem("gmm", get_schedule("vp"), dim=2, seed=0)
    exact = continuous_time(lambda x, t: truth.denoiser(x, t[0]), "x0", shape=(2,))
    frame = score_error_frame(LearnedScoreProblem(truth, exact), seed=0, times=6, samples=64)
    assert (frame.score_error == 0).all() and frame.bound.iloc[0] == 0


@pytest.fixture(scope="module")
def ring_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ring")
    train(TrainConfig(data="gmm", dim=2, steps=400, batch=256, width=64, depth=2), out,
          progress=False)
    return out / "checkpoint.pt"


def test_a_learned_score_study_shows_its_floor_beside_the_exact_score(ring_checkpoint):
    """A briefly trained ring model (400 steps): the checkpoint loads through the adapters (its
    schedule bound), the study runs two sections (learned, exact score), the learned one with
    e(t) and the bound's right side; at 32 Heun steps the learned NLL exceeds the exact-score NLL
    by more than 5 standard errors of their difference: the score-error floor, not noise."""
    adapter = load_model(str(ring_checkpoint))
    assert adapter.schedule == "vp" and adapter.convention == "continuous_time(prediction=eps)"
    with pytest.raises(ValueError, match="trained on schedule 'vp'"):
        run_study(StudyConfig(schedules=["ve"], samplers=["heun"], steps=[8], problem="gmm",
                              model=str(ring_checkpoint), dim=2), progress=False)
    # another data law of the same shape: its FAIL would measure the mismatch, not the sampler
    with pytest.raises(ValueError, match="trained on problem 'gmm'.*another data law"):
        run_study(StudyConfig(schedules=["vp"], samplers=["heun"], steps=[8],
                              problem="gaussian", model=str(ring_checkpoint), dim=2),
                  progress=False)
    with pytest.raises(ValueError, match="another data law"):
        run_study(StudyConfig(schedules=["vp"], samplers=["heun"], steps=[8],
                              problem="gmm:radius=3.0", model=str(ring_checkpoint), dim=2),
                  progress=False)
    config = StudyConfig(schedules=["vp"], samplers=["heun"], steps=[8, 32], batch=1024,
                         model=str(ring_checkpoint), problem="gmm", dim=2, metrics=["nll"])
    study = run_study(config, progress=False, trajectories=False)
    rows = study.results[study.results.steps == 32].set_index("score")
    gap = rows.value["learned"] - rows.value["exact"]
    assert gap > 5 * (rows.stderr["learned"] ** 2 + rows.stderr["exact"] ** 2) ** 0.5
    assert set(study.score_errors.config_id) == {rows.config_id["learned"]}
    assert study.score_errors.bound.iloc[0] > 0 and (study.score_errors.score_error > 0).all()
    page = render_report(StudyFrames(study.results, study.analysis, sections=study.sections,
                                     score_errors=study.score_errors))
    assert page.count("the learned score (solid) beside the exact score") == 1  # nll only


def test_train_cli(tmp_path):
    command = [sys.executable, str(ROOT / "experiments" / "train.py"), "--steps", "5",
               "--batch", "16", "--width", "8", "--quiet", "--out", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained 5 steps" in result.stdout and (tmp_path / "run" / "checkpoint.pt").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already trained: 5 steps, nothing to do" in again.stdout
    bad = subprocess.run(command[:2] + ["--weighting", "nope"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "weighting" in bad.stderr


class TinyConv(torch.nn.Module):
    """An image network for 1×4×4 samples: one convolution over the state and log t."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x, t):
        time = torch.log(t).to(x)[:, None, None, None].expand(-1, 1, *x.shape[2:])
        return self.conv(torch.cat([x, time], dim=1))


def tiny_conv() -> TinyConv:
    return TinyConv()


def test_an_image_network_trains_on_reshaped_data_and_its_checkpoint_is_measured(tmp_path):
    """A user's convolutional network on 16-D mixture data seen as 1×4×4 images: trains (and
    resumes) through the same loop, its checkpoint rebuilds it from its factory, and a study
    runs it on the problem's vectors, reshaped, beside the exact score."""
    config = TrainConfig(data="gmm", dim=16, shape=(1, 4, 4), steps=10, batch=32,
                         network="tests.test_training:tiny_conv")
    train(replace(config, steps=5), tmp_path, progress=False)
    payload = train(config, tmp_path, progress=False)
    assert payload["step"] == 10 and payload["sample_shape"] == [1, 4, 4]
    assert payload["network"]["class"] == "tests.test_training:tiny_conv"
    adapter = load_model(str(tmp_path / "checkpoint.pt"))
    assert isinstance(adapter.network, TinyConv) and adapter.shape == (1, 4, 4)
    study = run_study(StudyConfig(schedules=["vp"], samplers=["heun"], steps=[4, 8], batch=64,
                                  problem="gmm", dim=16, model=str(tmp_path / "checkpoint.pt"),
                                  metrics=["sliced_w2"]), progress=False, trajectories=False)
    assert (study.results.status == "ok").all()
    assert set(study.results.score) == {"learned", "exact"}
    with pytest.raises(ValueError, match="product is dim"):
        TrainConfig(dim=16, shape=(1, 4, 5))
