"""The training loop: seeded, resumable, checkpointed.

Every step's data batch, times and noise come from streams keyed by (seed, step)
(:func:`sdebench.seeding.generator`), so a run stopped and resumed from its checkpoint takes
exactly the steps an uninterrupted run takes (bit for bit on the CPU). A checkpoint is written
atomically (a temporary file, then a rename) every ``checkpoint_every`` steps and at the end; it
holds the configuration, the network (class, arguments, weights), the optimiser and the loss
history, and loads through :func:`sdebench.problems.adapters.load_model` (``--model
path/checkpoint.pt``). Data come from a problem of the catalogue at σ = 0 (its data law): the
problem built on the EDM schedule (s = 1, σ = t) and sampled at t = 0.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sdebench.problems.adapters import call_factory, read_checkpoint
from sdebench.problems.catalogue import get_problem
from sdebench.seeding import check_seed, generator
from sdebench.theory.catalogue import get_schedule
from sdebench.theory.parameterisation import KINDS
from sdebench.training.dsm import WEIGHTINGS, dsm_loss
from sdebench.training.networks import ScoreMLP

CHECKPOINT_FORMAT = "sdebench.training/2"
NETWORK_CLASS = "sdebench.training.networks:ScoreMLP"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DATA_TIME = torch.zeros((), dtype=torch.float64)
"""t = 0 of the EDM schedule: σ = 0, so p_t is the data law."""


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does; every field is recorded in its checkpoint."""

    data: str = "gmm"
    dim: int = 2
    schedule: str = "vp"
    prediction: str = "eps"
    weighting: str = "simple"
    steps: int = 4000
    batch: int = 512
    learning_rate: float = 2e-3
    width: int = 128
    depth: int = 3
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    checkpoint_every: int = 500
    network: str | None = None
    """``module:factory`` of the user's network (an ``nn.Module`` called as net(x, t) on states
    of shape (batch, *shape)); None: :class:`~sdebench.training.networks.ScoreMLP`."""
    shape: tuple[int, ...] | None = None
    """One sample's shape (e.g. 1, 8, 8 for images): the data vectors of dimension ``dim``
    reshaped; None: (dim,)."""

    def __post_init__(self):
        if self.prediction not in KINDS:
            raise ValueError(f"prediction must be one of {KINDS}, got {self.prediction!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        for name in ("dim", "steps", "batch", "width", "depth", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        check_seed(self.seed)
        get_schedule(self.schedule)  # a bad spec fails here
        if self.shape is not None:
            shape = tuple(int(n) for n in self.shape)
            object.__setattr__(self, "shape", shape)  # a checkpoint's JSON list → tuple
            if any(n < 1 for n in shape) or math.prod(shape) != self.dim:
                raise ValueError(f"shape {shape} must be positive sizes whose product is dim = "
                                 f"{self.dim}")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape or (self.dim,)

    def resumable_with(self, other: TrainConfig) -> list[str]:
        """The fields (other than ``steps`` and ``checkpoint_every``) in which two runs differ."""
        mine, theirs = asdict(self), asdict(other)
        return [key for key in mine if key not in ("steps", "checkpoint_every")
                and mine[key] != theirs[key]]


def data_problem(config: TrainConfig):
    """The data law: the problem on the EDM schedule, whose p_0 is the data (s = 1, σ = 0)."""
    problem = get_problem(config.data, get_schedule("edm"), dim=config.dim, seed=config.seed)
    return problem.to(dtype=DTYPES[config.dtype], device=config.device)


def _network(config: TrainConfig, data_std: float) -> torch.nn.Module:
    """The network to train, its weights drawn from torch's stream ``seed``: the user's
    factory's, or a ScoreMLP with the configured width and depth."""
    torch.manual_seed(config.seed)
    if config.network is None:
        network = ScoreMLP(config.dim, config.schedule, config.width, config.depth, data_std)
    else:
        network = call_factory(config.network, "network")
        if not isinstance(network, torch.nn.Module):
            raise ValueError(f"network factory {config.network!r} returned "
                             f"{type(network).__name__}, expected a torch.nn.Module")
    return network.to(dtype=DTYPES[config.dtype], device=config.device)


def _network_record(config: TrainConfig, data_std: float) -> dict:
    """How a checkpoint rebuilds the network: ``class`` (module:attribute) called with
    ``kwargs`` (sdebench.problems.adapters.load_model)."""
    if config.network is not None:
        return {"class": config.network, "kwargs": {}}
    return {"class": NETWORK_CLASS, "kwargs": {
        "dim": config.dim, "schedule": config.schedule, "width": config.width,
        "depth": config.depth, "data_std": data_std}}


def _data_std(problem, config: TrainConfig) -> float:
    """σ_data for the input scaling: the data's RMS per coordinate (65 536 samples)."""
    x = problem.sample_marginal(DATA_TIME, 65536, generator(config.seed, "data_std", device=config.device))
    return float(x.double().pow(2).mean().sqrt())


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees a half-written checkpoint, and a write that fails
    or is interrupted (Ctrl-C) leaves no temporary file behind."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint of this trainer's format (:func:`sdebench.problems.adapters.read_checkpoint`
    names a missing, damaged or foreign file)."""
    payload = read_checkpoint(path)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an sdebench training checkpoint "
                         f"(format {payload.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    return payload


def _check_step_changed_weights(network: torch.nn.Module, before: list[torch.Tensor],
                                learning_rate: float) -> None:
    """Raise ValueError if the first step of a run changed no weight, so that a run never
    reports steps that trained nothing. Adam's first step moves each weight whose gradient is
    nonzero by about the learning rate, and no later step by more than a small multiple of it
    (Kingma & Ba 2015, §2.1): if that rounds away for every weight, or no gradient is nonzero,
    the run learns nothing. One comparison per run (one host read)."""
    parameters = list(network.parameters())
    if any(not torch.equal(p.detach(), old) for p, old in zip(parameters, before, strict=True)):
        return
    if all(p.grad is None or not bool(p.grad.any()) for p in parameters):
        reason = "no weight receives a nonzero gradient from the loss (frozen or unused)"
    else:
        reason = (f"the learning rate {learning_rate:g} is below the resolution of the weights "
                  "(each update rounds away)")
    raise ValueError(f"the first training step changed no weight of the network: {reason}; "
                     "nothing would be trained")


def train(config: TrainConfig, out: str | Path, *, progress: bool = True) -> dict:
    """Train (or resume) into ``out``/checkpoint.pt; return the final checkpoint payload."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "checkpoint.pt"
    problem = data_problem(config)
    schedule = get_schedule(config.schedule)
    if path.exists():
        payload = load_checkpoint(path)
        previous = TrainConfig(**payload["config"])
        differing = previous.resumable_with(config)
        if differing:
            raise ValueError(f"{path} was trained with other settings ({', '.join(differing)}); "
                             "use another --out")
        data_std = payload["data_std"]
        network = _network(config, data_std)
        network.load_state_dict(payload["network"]["state"])
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        optimizer.load_state_dict(payload["optimizer"])
        start, losses = payload["step"], list(payload["losses"])
    else:
        data_std = _data_std(problem, config)
        network = _network(config, data_std)
        optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        start, losses = 0, []

    def payload_at(step: int) -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": asdict(config), "step": step,
                "prediction": config.prediction, "sample_shape": list(config.sample_shape),
                "data_std": data_std,
                "network": {**_network_record(config, data_std), "state": network.state_dict()},
                "optimizer": optimizer.state_dict(), "losses": losses}

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps,
               disable=not progress, desc="train", unit="step")
    average = math.nan
    for step in bar:
        x0 = problem.sample_marginal(DATA_TIME, config.batch, generator(
            config.seed, "train_data", step, device=config.device)).reshape(
            config.batch, *config.sample_shape)
        loss = dsm_loss(network, x0, schedule, config.prediction, config.weighting,
                        generator(config.seed, "train_noise", step, device=config.device),
                        data_std)
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on any trainable weight of the network "
                             "(its parameters are frozen or its output is detached): nothing "
                             "to train")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        before = [p.detach().clone() for p in network.parameters()] if step == start else None
        optimizer.step()
        value = float(loss.detach())  # one host read per step: the loss history and the progress bar
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the loss became {value} at step {step + 1}: training diverged; lower the "
                f"learning rate ({config.learning_rate:g})")
        if before is not None:
            _check_step_changed_weights(network, before, config.learning_rate)
        losses.append(value)
        average = value if math.isnan(average) else 0.98 * average + 0.02 * value
        bar.set_postfix(loss=f"{average:.4g}")
        if (step + 1) % config.checkpoint_every == 0:
            save_checkpoint(path, payload_at(step + 1))
    final = payload_at(max(start, config.steps))
    save_checkpoint(path, final)
    return final
