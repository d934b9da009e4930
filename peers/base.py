"""A peer library's sampler as a study entry, and the exact output law of its loop.

A peer sampler (:class:`PeerSampler`) runs a library's own loop, unchanged, on the study's
problem: its model is the problem's denoiser seen through the library's convention, and its
declarations (``order``, ``stochastic``, …) are those of :mod:`sdebench.solvers.solver`, each
with the source that states it. :func:`sdebench.solvers.loop.sample` calls its ``integrate``.

**Exact laws by probing.** On Gaussian data in eigen-coordinates every step a peer takes is
affine and coordinatewise in its state and its noise, so its output is
y = b + Σ_k A_k ⊙ x_k + Σ_j C_j ⊙ ξ_j for the input's sources x_k and the noise sources ξ_j. One
run of the library on a batch of probes recovers every coefficient: row 0 the input law's mean
without noise (b), one row per input source (mean + its coefficients: b + A_k ⊙ coef_k) and one
row per noise source set to 1 (b + C_j). A last row with random weights on every source checks
that the map really is affine and coordinatewise; if its residual exceeds round-off, the peer
is not affine (a clip, a state-dependent step) and :class:`NotAffineError` says so.

Noise sources. A library asks for noise in one of two ways, and :class:`ProbeNoise` serves both:

* ``brownian``: a standard normal tied to an interval, (W(b) − W(a))/√|b − a| of one Brownian
  motion (k-diffusion's ``noise_sampler(sigma, sigma_next)``, whose default is a Brownian tree
  in σ). The sources are the increments of W between the sorted query points, so overlapping
  intervals (DPM-Solver++ SDE's two draws per step) are correlated exactly as on one path.
* ``independent``: each request is a fresh standard normal (diffusers' ``variance_noise``).

A first run on the mean alone (noise zero) records the requests; the probe run then serves
each request as its combination of sources.
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.law import GaussianLaw, NotAffineError
from sdebench.seeding import generator
from sdebench.solvers.loop import CountingModel
from sdebench.solvers.solver import unit_roundoff


class PeerUnavailable(ImportError):
    """A peer library is not installed (the message says how to install it)."""


AFFINITY_SAFETY = 10
"""The probe's affinity check allows, per coordinate, |residual| ≤ AFFINITY_SAFETY · u · √(NFE)
· scale · (1 + Σ|weights|), scale the largest magnitude among the probe outputs and the states
the library handed the model on its way (the numbers it rounds: a first step from σ = 80 works
on states 80 times the output's), the weights that coordinate's: each probe output carries a
round-off of a few u · √NFE · scale (the rule of :data:`sdebench.studies.metrics.
ROUNDOFF_SAFETY`), and the check row combines the probes with those weights. A non-affine step
(e.g. a clip) leaves an O(scale) residual. (k-diffusion's dpm_fast at 8 steps on edm: residual
3.5e-14 against 1.2e-14 with the output's scale alone.)"""


class ProbeNoise:
    """Serves a library's noise requests on a batch of probe rows (module docstring).

    ``kind``: ``"brownian"`` (requests are intervals (a, b)) or ``"independent"``. ``weights``
    (rows, sources, d) is None while recording; then every request is answered with zeros."""

    def __init__(self, kind: str):
        if kind not in ("brownian", "independent"):
            raise ValueError(f"noise kind must be 'brownian' or 'independent', got {kind!r}")
        self.kind = kind
        self.requests: list[tuple[float, float]] = []
        self.points: list[float] = []
        self.source_rows = None
        self.check_weights = None
        self._served = 0

    @property
    def sources(self) -> int:
        if self.kind == "independent":
            return len(self.requests)
        return max(len(self.points) - 1, 0)

    def record(self, a: float = math.nan, b: float = math.nan) -> None:
        self.requests.append((a, b))

    def freeze(self) -> None:
        """End the recording run: the Brownian sources are the increments between the sorted
        points of all recorded intervals."""
        if self.kind == "brownian":
            self.points = sorted({p for request in self.requests for p in request})
        self._served = 0

    def coefficients(self, a: float = math.nan, b: float = math.nan) -> torch.Tensor:
        """The request's standard normal as a combination of the sources (float64, CPU)."""
        row = torch.zeros(self.sources, dtype=torch.float64)
        if self.kind == "independent":
            row[self._served] = 1.0
        else:
            low, high = sorted((a, b))
            points = torch.tensor(self.points, dtype=torch.float64)
            widths = points[1:] - points[:-1]
            inside = (points[:-1] >= low) & (points[1:] <= high)
            row[inside] = widths[inside].sqrt() / math.sqrt(high - low) * (1.0 if b >= a else -1.0)
        self._served += 1
        return row

    def draw(self, like: torch.Tensor, a: float = math.nan, b: float = math.nan) -> torch.Tensor:
        """The noise tensor of one request for the batch ``like`` (recording: zeros)."""
        if self.source_rows is None:
            self.record(a, b)
            return torch.zeros_like(like)
        if self._served >= len(self.requests):
            raise NotAffineError("the peer asked for more noise than on its recording run: its "
                                 "noise requests depend on the state, so probing cannot be exact")
        coefficients = self.coefficients(a, b).to(like)
        noise = torch.zeros_like(like)
        first = self.source_rows
        noise[first:first + self.sources] = coefficients.view(-1, *([1] * (like.ndim - 1)))
        noise[-1] = torch.tensordot(coefficients, self.check_weights.to(like), dims=1)
        return noise


class PeerSampler:
    """Base class of a peer library's sampler.

    Subclasses set the :data:`~sdebench.solvers.solver.DECLARATIONS` (checked when sampling
    starts, as for every solver; with ``order_source``: where the order is stated),
    ``library``, ``method`` (the library's name for it), ``twin`` (the sdebench sampler that
    implements the same method, or ``""``), ``convention`` (how its conventions differ from the
    twin's, if they do) and ``precision`` (a dtype coarser than the state's that the library
    computes in, or None), and implement :meth:`run`.
    """

    library: str = ""
    method: str = ""
    twin: str = ""
    convention: str = ""
    order_source: str = ""
    order_note: str = ""
    noise_kind: str = "independent"
    precision: torch.dtype | None = None

    @property
    def name(self) -> str:
        return f"{self.library}.{self.method}"

    def parameters(self) -> dict:
        """The options recorded with every result (subclasses return theirs)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.parameters()})"

    def run(self, model, schedule, x: torch.Tensor, ts: torch.Tensor, noise: ProbeNoise | None,
            seed: int) -> torch.Tensor:
        """The library's loop from x (a batch at ts[0]) to ts[-1] with ``model`` (x, t) → x̂₀.
        ``noise``: None for the library's own seeded noise, or the probe's noise to use."""
        raise NotImplementedError

    def integrate(self, model, schedule, x, ts: torch.Tensor, noise) -> torch.Tensor | GaussianLaw:
        """The output for a batch x (the library's own noise, seeded by ``noise.seed``), or the
        exact output law for a :class:`GaussianLaw` x (probing, module docstring)."""
        if isinstance(x, GaussianLaw):
            return probe_law(self, model, schedule, x, ts)
        return self.run(model, schedule, x, ts, None, getattr(noise, "seed", 0))


def probe_law(peer: PeerSampler, model, schedule, law: GaussianLaw, ts: torch.Tensor) -> GaussianLaw:
    """The exact output law of ``peer`` from ``law`` (module docstring): one recording run on
    the mean (stochastic peers: which noise they ask for), one run on the probe batch, an
    affinity check on its last row."""
    mean, coef = law.mean, law.coef
    recorder = ProbeNoise(peer.noise_kind)
    if peer.stochastic:  # a deterministic peer asks for no noise: nothing to record
        peer.run(model, schedule, mean[None], ts, recorder, 0)
    recorder.freeze()
    sources_in, sources_noise = coef.shape[0], recorder.sources
    # random weights that float32 holds exactly: a peer computing in float32 (diffusers casts
    # its noise to float32) then sees the same check row as a float64 one
    stream = generator(0, "probe_check")
    input_weights = torch.randn((sources_in, mean.numel()), generator=stream).double()
    noise_weights = torch.randn((sources_noise, mean.numel()), generator=stream).double()
    recorder.source_rows = 1 + sources_in
    recorder.check_weights = noise_weights
    probes = torch.cat([mean[None], mean + coef, mean.expand(sources_noise, -1),
                        (mean + (input_weights.to(coef) * coef).sum(0))[None]])
    handed = []  # per call, each coordinate's largest state the library handed the model

    def tracked(x, t):
        handed.append(x.detach().abs().amax(0))
        return model(x, t)

    counting = CountingModel(tracked)
    outputs = peer.run(counting, schedule, probes, ts, recorder if peer.stochastic else None, 0)
    base = outputs[0]
    if not bool(torch.isfinite(outputs).all()):  # no map to check: the loop reports NaN/Inf
        return GaussianLaw(outputs[:-1])
    input_coef = outputs[1:1 + sources_in] - base
    noise_coef = outputs[1 + sources_in:-1] - base
    predicted = base + (input_weights.to(base) * input_coef).sum(0) \
        + (noise_weights.to(base) * noise_coef).sum(0)
    # per coordinate: the check row combines that coordinate's probes with its own weights
    residual = (outputs[-1] - predicted).abs()
    scale = torch.stack([outputs[:-1].abs().amax(0), *(h.to(outputs) for h in handed)]).amax(0)
    weight = 1 + input_weights.abs().sum(0) + noise_weights.abs().sum(0)
    tolerance = AFFINITY_SAFETY * unit_roundoff(peer, base.dtype) \
        * math.sqrt(max(counting.calls, 1)) * scale * weight.to(base)
    if not (residual <= tolerance).all():
        worst = int(torch.argmax(residual - tolerance))
        raise NotAffineError(f"{peer.name} is not affine in its state and noise on this problem: "
                             f"the probe check's residual {float(residual[worst]):.3g} exceeds "
                             f"round-off {float(tolerance[worst]):.3g} (coordinate {worst}); its "
                             "exact law cannot be probed")
    return GaussianLaw(torch.cat([base[None], input_coef, noise_coef]))
