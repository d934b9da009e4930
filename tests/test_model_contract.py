"""The model contract, checked on a network's first call (problems/adapters.FirstCallCheck): an
output shaped like the input, in its dtype, finite, the input unchanged; each breach one error
naming the model. Factories, checkpoints and training runs that fail say so in one line."""

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from examples.own_model import tiny_eps_mlp
from sdebench.problems.adapters import (
    FirstCallCheck,
    ModelContractError,
    continuous_time,
    discrete_time,
    karras_denoiser,
    load_model,
    sample_shape,
)
from sdebench.problems.model import ModelProblem
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.theory import get_schedule
from sdebench.training.trainer import TrainConfig, load_checkpoint, save_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(data="gmm", dim=2, steps=2, batch=16, width=8, depth=1, checkpoint_every=1,
                   dtype="float64")


def _scale_data(x):
    x.data.mul_(0.5)  # bypasses autograd's version counter


BREACHES = {
    "broadcast": (lambda net: lambda x, t: net(x, t)[:1],
                  r"returned shape \(1, 8\) for an input of shape \(4, 8\)"),
    "scalar": (lambda net: lambda x, t: net(x, t).mean(),
               r"returned shape \(\) for an input of shape \(4, 8\)"),
    "int": (lambda net: lambda x, t: net(x, t).round().long(),
            r"returned torch\.int64 for torch\.float64 input: a prediction must be a floating"),
    "bool": (lambda net: lambda x, t: net(x, t) > 0, r"returned torch\.bool for torch\.float64"),
    "float16": (lambda net: lambda x, t: net(x, t).half(),
                r"returned torch\.float16 for torch\.float64 input \(unit round-off 0\.00049"),
    "float32": (lambda net: lambda x, t: net(x, t).float(),
                r"returned torch\.float32 for torch\.float64 input \(unit round-off 6e-08"),
    "all NaN": (lambda net: lambda x, t: torch.full_like(x, float("nan")),
                r"returned NaN/Inf in 32 of 32 entries for a finite input"),
    "one Inf": (lambda net: lambda x, t: net(x, t).index_fill(0, torch.tensor([2]), float("inf")),
                r"returned NaN/Inf in 8 of 32 entries"),
    "in place": (lambda net: lambda x, t: net(x, t) + 0 * x.mul_(0.5),
                 r"changed its input x \(the sampler's state\) in place"),
    "in place via .data": (lambda net: lambda x, t: (net(x, t), _scale_data(x))[0],
                           r"changed its input x \(the sampler's state\) in place"),
    "not a tensor": (lambda net: lambda x, t: net(x, t).tolist(),
                     r"returned builtins\.list, not a tensor"),
}


def _problem(network, prediction="eps") -> ModelProblem:
    return ModelProblem(continuous_time(network, prediction), get_schedule("vp"), (8,))


def _start(problem, n=4):
    t_max = torch.tensor(problem.schedule.numeric.t_max, dtype=torch.float64)
    return problem.sample_marginal(t_max, n, torch.Generator().manual_seed(0)), t_max


@pytest.mark.parametrize("breach", list(BREACHES))
def test_each_breach_of_the_contract_is_named_on_the_first_call(breach):
    """Each of these was accepted before (the ε conversion broadcasts a (1, 8) or () output over
    the batch; an int, bool or float16 output is promoted; an in-place change corrupts the
    state; NaN only showed as 'diverged' rows): now the first call raises, naming what the
    network returned."""
    make, message = BREACHES[breach]
    problem = _problem(make(tiny_eps_mlp()))
    x, t_max = _start(problem)
    with pytest.raises(ModelContractError, match=r"^the continuous_time\(prediction=eps\) network "
                                                 + message):
        problem.denoiser(x, t_max)


@pytest.mark.parametrize("adapter", ["karras_denoiser", "discrete_time"])
def test_the_check_covers_every_adapter(adapter):
    """The check wraps the raw network call, whatever the convention feeds it: a scalar output
    is refused for k-diffusion's and diffusers' conventions too."""
    def scalar(x, noise_level):
        return x.sum()

    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    made = karras_denoiser(scalar) if adapter == "karras_denoiser" else discrete_time(
        scalar, alphas_cumprod)
    problem = ModelProblem(made, get_schedule("vp"), (8,))
    x, t_max = _start(problem)
    with pytest.raises(ModelContractError, match=r"returned shape \(\) for an input of shape"):
        problem.denoiser(x, t_max)


def test_a_change_to_the_time_argument_is_named():
    """With one sample the time passed to the network is a view of the sampler's grid point: an
    in-place change to it would move the grid."""
    problem = _problem(lambda x, t: tiny_eps_mlp()(x, t) + 0 * t.clamp_(max=0.5)[:, None])
    with pytest.raises(ModelContractError,
                       match=r"changed its argument 2 \(the time or noise level\) in place"):
        problem.denoiser(*_start(problem, n=1))


def test_a_network_that_keeps_the_contract_is_passed_through_unchanged():
    """Negative control: the checked denoiser's outputs equal the unchecked conversion's bit for
    bit, on the first call and after it."""
    network = tiny_eps_mlp()
    problem = _problem(network)
    plain = continuous_time(network, "eps").make(network, problem.schedule)
    x, t_max = _start(problem)
    for t in (t_max, t_max / 2):
        assert torch.equal(problem.denoiser(x, t), plain(x, t))
    assert torch.equal(x, _start(problem)[0])  # the input is left as it was


def test_the_check_runs_on_the_first_call_only(monkeypatch):
    """After the first call the wrapper tests one Python flag and calls the network: a 3-step
    Heun run (6 evaluations) runs the check once, so the sampling loop's later calls make no
    copy and no host read (what keeps it sync-free on an accelerator). A network that turns
    NaN after its first call is left to the loop's own finite check."""
    checks = []
    original = FirstCallCheck._check
    monkeypatch.setattr(FirstCallCheck, "_check",
                        lambda self, *args: (checks.append(1), original(self, *args)))
    network, calls = tiny_eps_mlp(), []

    def later_nan(x, t):
        calls.append(1)
        return network(x, t) if len(calls) == 1 else torch.full_like(x, float("nan"))

    problem = _problem(network)
    schedule = problem.schedule
    ts = log_snr_grid(schedule, 3)
    x = _start(problem)[0]
    out = sample(get_solver("heun"), problem.denoiser, schedule, x, ts)
    assert out.nfe == 6 and len(checks) == 1
    nan_problem = _problem(later_nan)
    nan_problem.denoiser(x, ts[0])
    assert torch.isnan(nan_problem.denoiser(x, ts[1])).all()  # passed through, not checked


def _nets(tmp_path, monkeypatch) -> None:
    (tmp_path / "contract_nets.py").write_text(
        "import torch\n"
        "def all_nan():\n"
        "    return lambda x, t: torch.full_like(x, float('nan'))\n"
        "def takes_eight():\n"
        "    linear = torch.nn.Linear(8, 8).double()\n"
        "    return lambda x, t: linear(x)\n"
        "def raises():\n"
        "    raise RuntimeError('no GPU here')\n")
    (tmp_path / "broken_module.py").write_text("raise KeyError('config')\ndef make():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_study_names_the_breach_before_any_unit(tmp_path, monkeypatch):
    """Through a study: the contract error names the --model spec, raised as it is (not wrapped
    in "cannot denoise states"); a network that declares no shape and rejects the states is
    refused naming them; a --shape that contradicts the shape the model declares is refused
    naming both."""
    _nets(tmp_path, monkeypatch)
    base = dict(schedules=["vp"], samplers=["euler"], steps=[4, 8], batch=4)
    with pytest.raises(ModelContractError, match=r"^model 'contract_nets:all_nan' \(continuous_time"
                                                 r"\(prediction=eps\)\) returned NaN/Inf in 16 of "
                                                 r"16 entries for a finite input$"):
        run_study(StudyConfig(**base, model="contract_nets:all_nan", shape=(8,)), progress=False)
    with pytest.raises(ValueError, match=r"cannot denoise states of shape \(2, 3\)"):
        run_study(StudyConfig(**base, model="contract_nets:takes_eight", shape=(3,)),
                  progress=False)
    with pytest.raises(ValueError, match=r"shape \(4,\) \(--shape\) contradicts the sample shape "
                                         r"\(8,\) that model 'examples/own_model.py:tiny_eps_mlp'"):
        sample_shape(load_model("examples/own_model.py:tiny_eps_mlp"), (4,))
    assert sample_shape(load_model("examples/own_model.py:tiny_eps_mlp"), (8,)) == (8,)


def test_a_factory_or_module_that_raises_is_one_error_naming_it(tmp_path, monkeypatch):
    _nets(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=r"^model factory 'contract_nets:raises' raised "
                                         r"RuntimeError: no GPU here$"):
        load_model("contract_nets:raises")
    with pytest.raises(ValueError, match=r"broken_module.*KeyError.*'config'") as caught:
        load_model("broken_module:make")  # sdebench.registry names the module that fails
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"^network factory 'contract_nets:raises' raised"):
        train(replace(TINY, network="contract_nets:raises"), tmp_path / "run", progress=False)


def test_the_cli_exits_non_zero_with_the_reason_for_an_all_nan_model(tmp_path, monkeypatch):
    """The reported case: an all-NaN model made every unit 'diverged', every verdict
    INCONCLUSIVE, and exit status 0. Now the study stops before any unit with exit status 2
    and the reason in one line, no traceback."""
    _nets(tmp_path, monkeypatch)
    command = [sys.executable, str(ROOT / "experiments" / "convergence.py"), "--model",
               f"{tmp_path / 'contract_nets.py'}:all_nan", "--prediction", "eps", "--shape", "8",
               "--samplers", "euler", "--steps", "4,8", "--batch", "4", "--quiet", "--no-report",
               "--out", str(tmp_path / "study")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "returned NaN/Inf in 16 of 16 entries for a finite input" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    train(TINY, out, progress=False)
    return out / "checkpoint.pt"


def test_a_damaged_or_foreign_checkpoint_is_named_without_unsafe_advice(checkpoint, tmp_path):
    """torch's own errors for these advise weights_only=False (running the file's code) or dump
    miniz internals; the checkpoint readers (study and trainer) say what is wrong in one line."""
    data = checkpoint.read_bytes()
    module_file = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module_file)
    cases = {b"": "the file is empty or truncated",
             data[: len(data) // 2]: "it is not a complete torch archive",
             b"not a checkpoint at all": "it is not a torch archive of tensors and plain data",
             module_file.read_bytes(): "it is not a torch archive of tensors and plain data"}
    for index, (content, reason) in enumerate(cases.items()):
        path = tmp_path / f"bad{index}.pt"
        path.write_bytes(content)
        for read in (load_model, load_checkpoint):
            with pytest.raises(ValueError, match=re.escape(
                    f"checkpoint '{path}' cannot be read: {reason}")) as caught:
                read(str(path))
            assert "weights_only" not in str(caught.value) and "\n" not in str(caught.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="is not an sdebench training checkpoint"):
        load_model(str(foreign))
    with pytest.raises(ValueError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))


def test_a_checkpoint_whose_weights_do_not_fit_its_network_is_named(checkpoint, tmp_path):
    payload = torch.load(checkpoint, weights_only=True)
    payload["network"]["kwargs"]["width"] = 9
    changed = tmp_path / "changed.pt"
    torch.save(payload, changed)
    with pytest.raises(ValueError, match=r"its weights do not fit the network "
                                         r"'sdebench.training.networks:ScoreMLP' builds now"):
        load_model(str(changed))


def test_a_checkpoint_model_names_its_path_when_it_breaks_the_contract(checkpoint):
    adapter = load_model(str(checkpoint))
    assert adapter.name == str(checkpoint)
    problem = ModelProblem(replace(adapter, network=lambda x, t: x.sum()), get_schedule("vp"),
                           (2,))
    with pytest.raises(ModelContractError, match=f"^model '{checkpoint}' \\(continuous_time"):
        problem.denoiser(*_start(problem))


class Frozen(torch.nn.Module):
    """A network whose only trainable weight gets a zero gradient (the layer is frozen)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2).requires_grad_(False)
        self.unused = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, t):
        return self.linear(x) + 0 * self.unused


class Detached(Frozen):
    def forward(self, x, t):
        return self.linear(x).detach()


def frozen() -> Frozen:
    return Frozen()


def detached() -> Detached:
    return Detached()


@pytest.mark.parametrize("change, message", [
    (dict(learning_rate=1e-30), r"the learning rate 1e-30 is below the resolution of the weights"),
    (dict(network="tests.test_model_contract:frozen"), r"no weight receives a nonzero gradient"),
    (dict(network="tests.test_model_contract:detached"),
     r"the loss does not depend on any trainable weight"),
])
def test_a_run_that_would_train_nothing_is_refused_at_its_first_step(change, message, tmp_path):
    """Before, these printed 'trained N steps' with the weights as they started. Weights are
    O(0.1) (Linear's init), their float64 resolution ~1e-17, Adam's first step ≈ the learning
    rate: 1e-30 rounds away for every weight."""
    with pytest.raises(ValueError, match=message):
        train(replace(TINY, **change), tmp_path, progress=False)


def test_an_interrupted_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted_save(payload, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_run_is_one_line_and_keeps_its_last_checkpoint(tmp_path):
    """lr = 1e9 (the reported case) diverges at step 2: exit status 1, one line naming the
    learning rate, no traceback; the step-1 checkpoint is kept and no temporary file is left."""
    command = [sys.executable, str(ROOT / "experiments" / "train.py"), "--steps", "5", "--batch",
               "16", "--width", "8", "--checkpoint-every", "1", "--learning-rate", "1e9",
               "--quiet", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "training diverged; lower the learning rate (1e+09)" in result.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] >= 1
