"""Adapters from a network's convention to the denoiser contract D(x, t) = x̂₀ of the samplers.

The state is x_t = s(t)(x₀ + σ(t) ε) on the schedule the samplers integrate; each adapter feeds
the network the input scaling of its own convention, so one network serves any schedule whose
noise levels it was trained on. Conversions between parameterisations come from
:mod:`sdebench.theory.parameterisation` through the schedule's numeric twin; no formula is
retyped here.

* :func:`as_denoiser` / :func:`from_denoiser` — an ε, x₀, v or score model(x, t) ↔ a denoiser;
* :func:`continuous_time` — a network ``model(x, t)`` on the schedule itself (Song et al. 2021);
* :func:`karras_denoiser` — k-diffusion's ``model(x, sigma) = x̂₀`` on x₀ + σε (Karras et al.
  2022, eq. 7: D(x; σ));
* :func:`discrete_time` — diffusers' ``model(x, timestep).sample`` on √ᾱ x₀ + √(1−ᾱ) ε with its
  ``alphas_cumprod`` table (Ho et al. 2020): σ_k = √((1−ᾱ_k)/ᾱ_k), and a continuous time maps to
  the fractional timestep at which log σ, linearly interpolated between the table's entries,
  equals log σ(t) — k-diffusion's ``DiscreteSchedule.sigma_to_t`` convention;
* :func:`load_model` — ``module:factory`` → an adapter (what ``--model`` names).

Every denoiser an adapter builds checks the network's *first* call against the model contract
(:class:`FirstCallCheck`): an output shaped like its input, in its input's dtype, finite, the
input left unchanged. A breach raises :class:`ModelContractError` naming the model and what it
returned; later calls pass straight through (no host synchronisation after the first call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from sdebench.registry import import_object
from sdebench.theory.parameterisation import KINDS
from sdebench.theory.schedule import Schedule


def as_denoiser(model: Callable, kind: str, schedule: Schedule) -> Callable:
    """Wrap a ``kind`` model (``"x0"``, ``"eps"``, ``"v"`` or ``"score"``) as a denoiser."""
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")
    if kind == "x0":
        return model
    convert = schedule.numeric.conversion(kind, "x0")

    def denoiser(x, t):
        return convert(x, model(x, t), t)

    return denoiser


def from_denoiser(denoiser: Callable, kind: str, schedule: Schedule) -> Callable:
    """The inverse adapter: a ``kind`` model from a denoiser (useful for tests and problems)."""
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")
    if kind == "x0":
        return denoiser
    convert = schedule.numeric.conversion("x0", kind)

    def model(x, t):
        return convert(x, denoiser(x, t), t)

    return model


def guided(denoiser: Callable, likelihood_score: Callable, schedule: Schedule,
           scale: float = 1.0) -> Callable:
    """Conditional denoiser from ∇log p_t(x|y) = ∇log p_t(x) + scale · ∇ₓ log p_t(y|x)
    (Song et al. 2021, eq. 14; scale ≠ 1 is classifier guidance, Dhariwal & Nichol 2021).

    ``likelihood_score(x, t)`` must be the *time-t* likelihood score (theory/claims/conditional.py).
    """
    to_score = schedule.numeric.conversion("x0", "score")
    to_x0 = schedule.numeric.conversion("score", "x0")

    def conditional(x, t):
        score = to_score(x, denoiser(x, t), t) + scale * likelihood_score(x, t)
        return to_x0(x, score, t)

    return conditional


def _per_sample(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar (or per-sample) time or noise level as a (batch,) tensor on x's device."""
    return torch.as_tensor(value, dtype=x.dtype, device=x.device).expand(x.shape[0])


def _broadcast(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (batch,) or scalar tensor shaped to multiply a (batch, *shape) state."""
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return value.reshape(value.shape + (1,) * (x.ndim - value.ndim)) if value.ndim else value


def _output(result) -> torch.Tensor:
    """A network's tensor output: diffusers models return an object with ``.sample``."""
    return result.sample if hasattr(result, "sample") else result


class ModelContractError(ValueError):
    """A network broke the model contract on its first call (:class:`FirstCallCheck`)."""


class FirstCallCheck:
    """``network(x, *conditioning)``, its first call checked against the model contract, every
    later call passed straight through.

    The contract (what every sampler assumes of a prediction; a breach otherwise gives silent
    nonsense, e.g. an ε output of shape (1, d) or () is broadcast over the batch by the
    conversion x̂₀ = (x − sσ ε̂)/s): the output (``.sample`` for diffusers) is a tensor of the
    input's shape and dtype (a float16 output has unit round-off 2⁻¹¹ ≈ 4.9e-4, which a float64
    study would count as the samplers' error), finite wherever the input is, and the input
    tensors are unchanged afterwards (the sampler's state is passed in; an in-place change
    corrupts it). The check compares copies of the inputs, so it also sees writes that bypass
    autograd's version counter (``x.data.mul_``). It costs one copy of the inputs and a few host
    reads on the first call only; afterwards ``__call__`` tests one Python flag and calls the
    network, so the sampling loop stays free of host synchronisation on an accelerator. On the
    meta device (no values) only shape and dtype are checked."""

    def __init__(self, network: Callable, label: str):
        self.network, self.label = network, label
        self.checked = False

    def __call__(self, x, *conditioning):
        if self.checked:
            return self.network(x, *conditioning)
        inputs = (x, *conditioning)
        has_values = x.device.type != "meta"
        copies = [value.clone() if has_values and isinstance(value, torch.Tensor) else None
                  for value in inputs]
        result = self.network(x, *conditioning)
        self._check(_output(result), inputs, copies)
        self.checked = True
        return result

    def _check(self, out, inputs, copies) -> None:
        x = inputs[0]
        if not isinstance(out, torch.Tensor):
            self._breach(f"returned {type(out).__module__}.{type(out).__name__}, not a tensor")
        if out.shape != x.shape:
            self._breach(f"returned shape {tuple(out.shape)} for an input of shape "
                         f"{tuple(x.shape)}: it must predict every entry of its input (an output "
                         "that broadcasts, e.g. out[:1] or a scalar, would be stretched over the "
                         "batch; check --shape)")
        if not out.dtype.is_floating_point:
            self._breach(f"returned {out.dtype} for {x.dtype} input: a prediction must be a "
                         "floating-point tensor")
        if out.dtype != x.dtype:
            self._breach(f"returned {out.dtype} for {x.dtype} input (unit round-off "
                         f"{torch.finfo(out.dtype).eps / 2:.2g} against "
                         f"{torch.finfo(x.dtype).eps / 2:.2g}): return the input's dtype (the "
                         "study moves an nn.Module to --dtype; cast a plain function's output)")
        for position, (value, copy) in enumerate(zip(inputs, copies, strict=True)):
            if copy is not None and not (value.shape == copy.shape and torch.allclose(
                    value, copy, rtol=0, atol=0, equal_nan=True)):  # bit-equal, NaN = NaN
                what = "its input x (the sampler's state)" if position == 0 else (
                    f"its argument {position + 1} (the time or noise level)")
                self._breach(f"changed {what} in place: compute on a copy (x = x.clone()) or "
                             "use out-of-place operations")
        if copies[0] is not None and bool(torch.isfinite(x).all()):
            finite = torch.isfinite(out)
            if not bool(finite.all()):
                self._breach(f"returned NaN/Inf in {int((~finite).sum())} of {out.numel()} "
                             "entries for a finite input")

    def _breach(self, what: str):
        raise ModelContractError(f"{self.label} {what}")


@dataclass(frozen=True)
class ModelAdapter:
    """A user's network with its convention: ``make(network, schedule)`` returns the denoiser
    D(x, t) = x̂₀ on ``schedule``; ``shape`` is one sample's shape when the adapter knows it."""

    network: Callable
    convention: str
    make: Callable[[Callable, Schedule], Callable]
    shape: tuple[int, ...] | None = None
    schedule: str | None = None
    """The schedule spec a continuous-time network was trained on (its t is that schedule's
    time), when known; None for conventions that carry their own noise level."""
    data: dict | None = None
    """The data law it was trained on, when known (a checkpoint records it): ``{"problem": spec,
    "dim": d, "seed": seed}`` of the problem catalogue."""
    name: str | None = None
    """What the user called it (the ``--model`` spec), for error messages."""

    def denoiser_for(self, schedule: Schedule, compile: bool = False) -> Callable:
        """The denoiser on ``schedule``, its network's first call checked against the model
        contract (:class:`FirstCallCheck`); with ``compile``, the network call goes through
        ``torch.compile`` (the conversions around it stay eager)."""
        network = torch.compile(self.network) if compile else self.network
        label = f"model {self.name!r} ({self.convention})" if self.name else (
            f"the {self.convention} network")
        return self.make(FirstCallCheck(network, label), schedule)


def continuous_time(model: Callable, prediction: str, shape=None) -> ModelAdapter:
    """``model(x, t)`` with t the schedule's own time (a (batch,) tensor), predicting
    ``prediction`` ∈ {eps, x0, v, score} of x_t itself."""
    if prediction not in KINDS:
        raise ValueError(f"unknown prediction {prediction!r}; expected one of {KINDS}")

    def make(network, schedule):
        def predict(x, t):
            return _output(network(x, _per_sample(t, x)))

        return as_denoiser(predict, prediction, schedule)

    return ModelAdapter(model, f"continuous_time(prediction={prediction})", make, shape)


def karras_denoiser(model: Callable, shape=None) -> ModelAdapter:
    """k-diffusion's denoiser ``model(y, sigma) = x̂₀`` with y = x₀ + σε (Karras et al. 2022,
    eq. 7), sigma a (batch,) tensor: D(x, t) = model(x / s(t), σ(t))."""

    def make(network, schedule):
        numeric = schedule.numeric

        def denoiser(x, t):
            y = x / _broadcast(numeric.s(t), x)
            return _output(network(y, _per_sample(numeric.sigma(t), x)))

        return denoiser

    return ModelAdapter(model, "karras_denoiser", make, shape)


def discrete_time(model: Callable, alphas_cumprod, prediction: str = "eps",
                  shape=None) -> ModelAdapter:
    """diffusers' ``model(x, timestep).sample`` trained on the discrete chain with
    ``alphas_cumprod`` (ᾱ_0 … ᾱ_{N−1}, decreasing), predicting ``eps``, ``v`` (Salimans & Ho
    2022: v = √ᾱ ε − √(1−ᾱ) x₀) or ``x0`` ("sample" in diffusers) of its input
    x = √ᾱ x₀ + √(1−ᾱ) ε.

    For the schedule (s, σ) the samplers integrate: y = x/s(t), the network's input is
    y/√(1+σ²) (ᾱ = 1/(1+σ²)), its timestep the fractional index τ(σ) of
    :func:`fractional_timestep`. The schedule's σ range must lie within the table's."""
    alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    if alphas_cumprod.ndim != 1 or alphas_cumprod.numel() < 2:
        raise ValueError("alphas_cumprod must be a 1-D table of at least 2 entries")
    if not (torch.all(alphas_cumprod > 0) and torch.all(alphas_cumprod < 1)
            and torch.all(alphas_cumprod[1:] < alphas_cumprod[:-1])):
        raise ValueError("alphas_cumprod must decrease strictly inside (0, 1)")
    if prediction not in ("eps", "v", "x0"):
        raise ValueError(f"prediction must be 'eps', 'v' or 'x0' for a discrete-time model, "
                         f"got {prediction!r}")
    log_sigmas = 0.5 * torch.log((1 - alphas_cumprod) / alphas_cumprod)

    def make(network, schedule):
        check_sigma_range(schedule, log_sigmas)
        numeric = schedule.numeric
        tables: dict = {}

        def table(x):
            key = (x.dtype, x.device)
            if key not in tables:
                tables[key] = log_sigmas.to(dtype=x.dtype, device=x.device)
            return tables[key]

        def denoiser(x, t):
            sigma = _per_sample(numeric.sigma(t), x)
            root_alpha = _broadcast(torch.rsqrt(1 + sigma**2), x)  # √ᾱ
            root_one_minus = _broadcast(sigma, x) * root_alpha  # √(1 − ᾱ)
            x_model = x / _broadcast(numeric.s(t), x) * root_alpha
            out = _output(network(x_model, fractional_timestep(torch.log(sigma), table(x))))
            if prediction == "eps":
                return (x_model - root_one_minus * out) / root_alpha
            if prediction == "v":
                return root_alpha * x_model - root_one_minus * out
            return out

        return denoiser

    return ModelAdapter(model, f"discrete_time(prediction={prediction}, "
                               f"steps={alphas_cumprod.numel()})", make, shape)


def fractional_timestep(log_sigma: torch.Tensor, log_sigmas: torch.Tensor) -> torch.Tensor:
    """τ with log σ linear in τ between the table's entries: for log σ_k ≤ log σ ≤ log σ_{k+1},
    τ = k + (log σ − log σ_k)/(log σ_{k+1} − log σ_k). Values outside the table are clamped
    (:func:`check_sigma_range` refuses schedules that need them). No host synchronisation."""
    k = torch.searchsorted(log_sigmas, log_sigma.contiguous()).clamp(1, log_sigmas.numel() - 1) - 1
    low, high = log_sigmas[k], log_sigmas[k + 1]
    weight = ((log_sigma - low) / (high - low)).clamp(0, 1)
    return k.to(log_sigma.dtype) + weight


def check_sigma_range(schedule: Schedule, log_sigmas: torch.Tensor) -> None:
    """Raise ValueError unless σ(t_min) … σ(t_max) lies within the table's σ range (relative
    slack 1e-6 for the round-off of √((1−ᾱ)/ᾱ))."""
    numeric = schedule.numeric
    low, high = (float(numeric.sigma(torch.tensor(t, dtype=torch.float64)))
                 for t in (numeric.t_min, numeric.t_max))
    table_low, table_high = math.exp(float(log_sigmas[0])), math.exp(float(log_sigmas[-1]))
    if low < table_low * (1 - 1e-6) or high > table_high * (1 + 1e-6):
        raise ValueError(
            f"schedule {schedule.name!r} spans σ ∈ [{low:.6g}, {high:.6g}], outside the model's "
            f"table σ ∈ [{table_low:.6g}, {table_high:.6g}]; choose a schedule inside it, e.g. "
            f"edm:sigma_min={table_low:.6g},sigma_max={table_high:.6g} (or a vp t-range)")


def load_model(spec: str, prediction: str | None = None) -> ModelAdapter:
    """``module:factory`` (or ``path/file.py:factory``) → ``factory()``, which returns either a
    :class:`ModelAdapter` (from one of the adapters above; it carries its own convention) or a
    plain network ``model(x, t)``, wrapped by :func:`continuous_time` with ``prediction``
    (default ``eps``). A path ending in ``.pt`` is a checkpoint of ``experiments/train.py``."""
    if spec.endswith(".pt"):
        return _load_checkpoint(spec, prediction)
    _check_model_spec(spec)
    made = call_factory(spec, "model")
    if isinstance(made, ModelAdapter):
        if prediction is not None and f"prediction={prediction}" not in made.convention:
            raise ValueError(f"model {spec!r} returns an adapter with its own convention "
                             f"({made.convention}); --prediction {prediction} contradicts it")
        return dataclasses.replace(made, name=spec)
    if not callable(made):
        raise TypeError(f"model factory {spec!r} returned {type(made).__name__}, expected a "
                        "network model(x, t) or a sdebench.problems.model adapter")
    return dataclasses.replace(continuous_time(made, prediction or "eps"), name=spec)


def _first_line(error: BaseException) -> str:
    """``Type: first line of the message``: a user's error in one line (the full one stays
    chained as the cause)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def call_factory(spec: str, what: str, **kwargs):
    """``module:factory`` (or ``path/file.py:factory``) imported and called with ``kwargs``. The
    factory is the user's code: anything it raises becomes one ValueError naming ``what`` and
    ``spec`` (:func:`~sdebench.registry.import_object` names a module that fails to import or
    lacks the name with a SpecError; a non-callable is a TypeError)."""
    factory = import_object(spec)
    if not callable(factory):
        raise TypeError(f"{what} {spec!r} must name a factory function, got "
                        f"{type(factory).__name__}")
    try:
        return factory(**kwargs)
    except Exception as error:  # the user's factory: any error means it made no network
        raise ValueError(f"{what} factory {spec!r} raised {_first_line(error)}") from error


def _check_model_spec(spec: str) -> None:
    """Name what a ``--model`` that is neither a checkpoint nor ``module:factory`` lacks."""
    path = Path(spec)
    if path.is_dir():
        inside = path / "checkpoint.pt"
        hint = f"did you mean {inside}?" if inside.exists() else (
            "expected module:factory, path/file.py:factory or a training checkpoint .pt")
        raise ValueError(f"model {spec!r} is a directory: {hint}")
    if spec.endswith(".py"):
        raise ValueError(f"model {spec!r} names a file but no factory: add :factory, the "
                         f"function in it that returns the network (e.g. {spec}:make_model)")
    module, _, attribute = spec.partition(":")
    if module.endswith(".py") and not Path(module).is_file():
        raise ValueError(f"model {spec!r}: the file {module!r} does not exist")


_UNREADABLE = {
    EOFError: "the file is empty or truncated",
    RuntimeError: "it is not a complete torch archive (truncated or damaged)",
    pickle.UnpicklingError: "it is not a torch archive of tensors and plain data (other "
                            "pickled objects are never loaded: reading a checkpoint runs no code)",
}


def read_checkpoint(path) -> dict:
    """The payload of a training checkpoint (:mod:`sdebench.training.trainer`), read with
    ``weights_only=True``. A missing, damaged or foreign file raises one ValueError naming it
    and why."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"checkpoint {str(path)!r} does not exist") from None
    except (EOFError, RuntimeError, pickle.UnpicklingError, OSError) as error:
        reason = next((text for kind, text in _UNREADABLE.items() if isinstance(error, kind)),
                      _first_line(error))
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {reason}; train it again "
                         "(experiments/train.py) or name the right file") from None
    if not (isinstance(payload, dict)
            and str(payload.get("format", "")).startswith("sdebench.training/")):
        raise ValueError(f"{str(path)!r} is not an sdebench training checkpoint (no "
                         "'sdebench.training/…' format record)")
    return payload


def _load_checkpoint(path: str, prediction: str | None) -> ModelAdapter:
    """A training checkpoint (sdebench.training.trainer): its network class rebuilt with its
    arguments and weights, in its own prediction convention."""
    payload = read_checkpoint(path)
    if prediction is not None and prediction != payload["prediction"]:
        raise ValueError(f"checkpoint {path!r} predicts {payload['prediction']!r}; "
                         f"--prediction {prediction} contradicts it")
    record = payload["network"]
    network = call_factory(record["class"], f"the network of checkpoint {path!r},",
                           **record["kwargs"])
    try:
        network.load_state_dict(record["state"])
    except (RuntimeError, AttributeError) as error:
        raise ValueError(f"checkpoint {path!r}: its weights do not fit the network "
                         f"{record['class']!r} builds now ({_first_line(error)})") from error
    network.eval()
    adapter = continuous_time(network, payload["prediction"], tuple(payload["sample_shape"]))
    config = payload["config"]
    return dataclasses.replace(adapter, schedule=config["schedule"], name=path, data={
        "problem": config["data"], "dim": config["dim"], "seed": config["seed"]})


def sample_shape(adapter: ModelAdapter, shape=None) -> tuple[int, ...]:
    """One sample's shape: ``shape`` if given, else the adapter's, else the network's
    ``sample_shape`` attribute, else a diffusers 2-D UNet's config (``in_channels`` ×
    ``sample_size``²). A ``shape`` that contradicts the one the model declares is refused: a
    fully convolutional network runs on it, but not on the data it was made for."""
    declared = adapter.shape or getattr(adapter.network, "sample_shape", None) \
        or _unet_2d_shape(adapter.network)
    if shape and declared and tuple(int(n) for n in shape) != tuple(int(n) for n in declared):
        raise ValueError(f"shape {tuple(int(n) for n in shape)} (--shape) contradicts the sample "
                         f"shape {tuple(int(n) for n in declared)} that model "
                         f"{adapter.name or adapter.convention!r} declares: drop --shape, or "
                         "correct the shape its factory declares")
    shape = shape or declared
    if not shape:
        raise ValueError("the model's sample shape is unknown: pass --shape (e.g. 3,32,32) or "
                         "give the adapter (or the network's sample_shape) a shape")
    return tuple(int(n) for n in shape)


def _unet_2d_shape(network) -> tuple[int, ...] | None:
    """(in_channels, H, W) from a diffusers 2-D UNet's config (UNet2DModel,
    UNet2DConditionModel: ``sample_size`` an int or (H, W)); None for anything else."""
    config = getattr(network, "config", None)
    if "2D" not in type(network).__name__ or config is None:
        return None
    channels, size = getattr(config, "in_channels", None), getattr(config, "sample_size", None)
    if channels is None or size is None:
        return None
    return (int(channels), *((int(size),) * 2 if isinstance(size, int) else map(int, size)))


def network_digest(network) -> str:
    """A hash of a module's parameters and buffers (names, dtypes, shapes, values), so results
    are reused only for the same weights; ``"unhashed"`` for a plain function."""
    if not isinstance(network, torch.nn.Module):
        return "unhashed"
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
