"""k-diffusion's samplers (Crowson, ``k_diffusion/sampling.py``) as study entries.

k-diffusion integrates in Karras et al.'s (2022, eq. 4) variables: the state x̃ = x/s(t), the
noise level σ, and a denoiser D(x̃; σ). A study's grid ts becomes ``sigmas = σ(ts)``, its start
x is divided by s(t_max), its model is called as D(s(t) x̃, t) with t = σ⁻¹(σ), and the output
is multiplied by s(t_min): the same ODE/SDE, in the library's own coordinates.

Loading. k-diffusion's package ``__init__`` imports its training stack (torchvision, wandb,
clip, kornia, …), which would pull a second torch build. Its sampling module needs only torch,
scipy, torchsde, torchdiffeq, tqdm and one helper of ``k_diffusion.utils`` (``append_dims``).
:func:`sampling_module` therefore executes the installed ``k_diffusion/sampling.py`` — the
library's file, unchanged — under a private package name whose ``utils`` holds that helper;
the real ``k_diffusion`` is never imported, so a user's own import of it is unaffected.
Install: ``pip install "sdebench[peers]"`` and ``pip install --no-deps k-diffusion`` (README).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sdebench.peers.base import PeerSampler, PeerUnavailable, ProbeNoise, probe_law
from sdebench.peers.options import typed_options
from sdebench.problems.law import GaussianLaw
from sdebench.registry import SpecError
from sdebench.seeding import derive_seed, generator

_PRIVATE = "_sdebench_k_diffusion"
_LOOP_ARGUMENTS = {"model", "x", "sigmas", "extra_args", "callback", "disable", "noise_sampler"}


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """``k_diffusion.utils.append_dims``: trailing singleton dimensions up to target_dims."""
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def sampling_module() -> types.ModuleType:
    """The installed ``k_diffusion/sampling.py``, loaded once under a private name (module
    docstring); :class:`PeerUnavailable` if k-diffusion or a module it needs is missing."""
    name = f"{_PRIVATE}.sampling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable("k-diffusion is not installed: pip install 'sdebench[peers]' && "
                              "pip install --no-deps 'k-diffusion>=0.1.1'")
    path = Path(next(iter(spec.submodule_search_locations))) / "sampling.py"
    package = types.ModuleType(_PRIVATE)
    package.__path__ = []
    utils = types.ModuleType(f"{_PRIVATE}.utils")
    utils.append_dims = _append_dims
    package.utils = utils
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules.update({_PRIVATE: package, f"{_PRIVATE}.utils": utils, name: module})
    try:
        module_spec.loader.exec_module(module)
    except ImportError as error:
        for key in (_PRIVATE, f"{_PRIVATE}.utils", name):
            sys.modules.pop(key, None)
        raise PeerUnavailable(f"k-diffusion's sampling module needs {error.name!r}: pip install "
                              "'sdebench[peers]'") from error
    return module


@dataclass(frozen=True)
class Method:
    """One k-diffusion sampler: its function, declarations and where they are stated."""

    function: str
    stochastic: bool
    order: float | None
    nfe_per_step: float
    order_source: str
    twin: str = ""
    convention: str = ""
    order_note: str = ""
    interval: bool = False  # called with (sigma_min, sigma_max, n) and its own grid, not sigmas
    adaptive: bool = False  # called with (sigma_min, sigma_max): its step controller sets the grid


_KARRAS_ODE = ("steps x̃ = x/s in σ (Karras et al. 2022, eq. 4); sdebench's {twin} steps x in t: "
               "the same method where s = 1 and σ = t (edm), a different one elsewhere")

_EDM_SECTION_3 = "Karras et al. 2022, §3"
_NO_WEAK_ORDER = ("no weak order is documented (k-diffusion's docstring names the method only; "
                  "Lu et al. 2022b and diffusers PR #3344 give none)")

METHODS = {
    "euler": Method("sample_euler", False, 1, 1, f"{_EDM_SECTION_3} and Alg. 2 with S_churn = 0: "
                    "Euler's method, first order", "euler", _KARRAS_ODE.format(twin="euler")),
    "heun": Method("sample_heun", False, 2, 2, f"{_EDM_SECTION_3} and Alg. 1: Heun's method, "
                   "O(h³) local error", "heun", _KARRAS_ODE.format(twin="heun")),
    "dpm_2": Method("sample_dpm_2", False, 2, 2, "the midpoint step in log σ of DPM-Solver-2 "
                    "(Lu et al. 2022, Thm. 3.2: order 2); k-diffusion's docstring: 'inspired by "
                    "DPM-Solver-2'"),
    "lms": Method("sample_lms", False, 4, 1, "k-diffusion's `order` argument (Adams–Bashforth "
                  "on the variable grid, weights by quadrature; no docstring)",
                  order_note="its first steps use orders 1, 2, 3 (start-up)"),
    "dpmpp_2m": Method("sample_dpmpp_2m", False, 2, 1, "Lu et al. 2022b (DPM-Solver++), Alg. 2: "
                       "multistep second order", "dpmpp_2m"),
    "euler_ancestral": Method("sample_euler_ancestral", True, 1, 1, "the same method as "
                              "sdebench's ancestral (DDIM with η = 1, Song, Meng & Ermon 2021, "
                              "§4.1; see the agreement column)", "ancestral"),
    "dpmpp_2m_sde": Method("sample_dpmpp_2m_sde", True, 2, 1, "the same method as sdebench's "
                           "dpmpp_2m_sde (SDE-DPM-Solver++(2M), Lu et al. 2022b §5, called "
                           "'2nd-order' by its author in diffusers PR #3344; see the agreement "
                           "column)", "dpmpp_2m_sde"),
    "dpmpp_2s_ancestral": Method("sample_dpmpp_2s_ancestral", True, None, 2, "",
                                 order_note=_NO_WEAK_ORDER),
    "dpm_2_ancestral": Method("sample_dpm_2_ancestral", True, None, 2, "",
                              order_note=_NO_WEAK_ORDER),
    "dpmpp_sde": Method("sample_dpmpp_sde", True, None, 2, "", order_note=_NO_WEAK_ORDER),
    "dpm_fast": Method(
        "sample_dpm_fast", False, None, 1, "",
        order_note="DPM-Solver-fast (Lu et al. 2022, DPM-Solver): ⌊n/3⌋ + 1 steps uniform in λ for n "
        "model calls, of orders 3, …, 3 and then n mod 3 (or 2, 1 where 3 divides n): a last "
        "first-order step for n ≡ 0, 1 (mod 3) limits it to second order asymptotically, n ≡ 2 "
        "keeps third; no single order to declare", interval=True,
        convention="its own grid (⌊n/3⌋ + 1 steps uniform in λ between the study's ends, n = "
        "steps model calls), not the study's --grid"),
    "dpmpp_3m_sde": Method("sample_dpmpp_3m_sde", True, None, 1, "", order_note=_NO_WEAK_ORDER),
    "dpm_adaptive": Method(
        "sample_dpm_adaptive", False, None, float("nan"), "",
        order_note="adaptive (DPM-Solver-12/23 with a PID step-size controller, Lu et al. 2022, "
        "DPM-Solver, §4.4): its tolerances rtol/atol, not a grid, set its accuracy and its NFE; "
        "judged by its error at the NFE it takes, not by an order", interval=True, adaptive=True,
        convention="its own grid between the study's ends, chosen by its step controller (the "
        "exact law replays the decisions it takes on DECISION_BATCH draws of the start law)"),
}

DECISION_BATCH = 4096
"""The draws from the start law on which an adaptive sampler's step controller decides its steps
for the exact law (:meth:`KDiffusionSampler.integrate`): its error norm is a root mean square
over batch and coordinates, so on 4096 × d numbers its relative fluctuation is below 1/√8192
≈ 1 %, and the decisions are those of any large batch but for a step near the acceptance
threshold."""


def decision_draws(law: GaussianLaw) -> torch.Tensor:
    """:data:`DECISION_BATCH` draws of ``law`` from a fixed stream: where an adaptive sampler
    decides its steps for the exact law (:meth:`KDiffusionSampler.integrate`); its NFE on them
    is the NFE of that law."""
    stream = generator(0, "adaptive decisions")
    sources = torch.randn((DECISION_BATCH, law.coef.shape[0]), generator=stream)
    return law.mean + sources.to(law.coef) @ law.coef


class KDiffusionSampler(PeerSampler):
    """``k_diffusion.sampling.sample_<method>`` with its options (``eta``, ``order``,
    ``solver_type``, …; every keyword of the function but the loop's own, typed by its
    defaults, :mod:`sdebench.peers.options`), noise through its
    ``noise_sampler`` argument: k-diffusion's Brownian tree in σ for the library's own runs, the
    probe's Brownian sources for exact laws."""

    library = "k-diffusion"
    noise_kind = "brownian"
    strong_order = None

    def __init__(self, method: str, **options):
        if method not in METHODS:
            raise SpecError(f"unknown k-diffusion sampler {method!r}; expected one of "
                            f"{sorted(METHODS)}")
        self.method, self._declared = method, METHODS[method]
        function = getattr(sampling_module(), self._declared.function)
        loop = _LOOP_ARGUMENTS | ({"sigma_min", "sigma_max", "n", "return_info"}
                                  if self._declared.interval else set())
        parameters = {name: parameter for name, parameter in
                      inspect.signature(function).parameters.items() if name not in loop}
        self.options = typed_options(options, parameters, f"k-diffusion {self._declared.function}")
        if self._declared.adaptive and self.options.get("eta", 0.0) != 0:
            raise SpecError(f"k-diffusion {self._declared.function}: eta={self.options['eta']!r} "
                            "makes its step controller react to the noise drawn, so no exact law "
                            "can replay its decisions; sdebench judges it at eta = 0")
        self._function = function

    @property
    def stochastic(self) -> bool:
        return self._declared.stochastic and self.options.get("eta", 1.0) != 0

    @property
    def adaptive(self) -> bool:
        """Whether its step controller, not the study's step count, sets its grid (its NFE is
        what its tolerances buy: judged by error against NFE)."""
        return self._declared.adaptive

    @property
    def order(self):
        if self.method == "lms":
            return self.options.get("order", 4)
        if self.stochastic or not self._declared.stochastic:
            return self._declared.order
        return None  # a stochastic method run with eta = 0: its ODE order is not declared

    @property
    def order_note(self) -> str:
        if self._declared.stochastic and not self.stochastic:
            return "run with eta = 0: the deterministic limit's order is not declared"
        return self._declared.order_note

    @property
    def nfe_per_step(self) -> float:
        return self._declared.nfe_per_step

    @property
    def order_source(self) -> str:
        return self._declared.order_source

    @property
    def twin(self) -> str:
        return self._declared.twin if not self.options else ""

    @property
    def convention(self) -> str:
        return self._declared.convention

    def parameters(self) -> dict:
        return {"method": self.method, **self.options}

    def run(self, model, schedule, x, ts, noise: ProbeNoise | None, seed: int) -> torch.Tensor:
        numeric = schedule.numeric
        sigmas = numeric.sigma(ts).to(x)

        def denoiser(x_tilde, sigma):
            t = numeric.sigma_inv(sigma[:1])[0]
            return model(numeric.s(t) * x_tilde, t)

        x_tilde = x / numeric.s(ts[0])
        arguments = dict(self.options)
        if self.stochastic:
            arguments["noise_sampler"] = self._noise_sampler(x_tilde, sigmas, noise, seed)
        with warnings.catch_warnings():
            # torchsde warns when a query lies a float ulp outside the tree's [σ_min, σ_max]
            warnings.filterwarnings("ignore", module="torchsde")
            # dpm_fast builds torch.tensor(sigma) from a tensor: torch's notice, every call
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            if self._declared.adaptive:  # its own grid between the ends
                out = self._function(denoiser, x_tilde, sigmas[-1], sigmas[0], disable=True,
                                     **arguments)
            elif self._declared.interval:  # its own grid between the ends, n model calls
                out = self._function(denoiser, x_tilde, sigmas[-1], sigmas[0],
                                     len(sigmas) - 1, disable=True, **arguments)
            else:
                out = self._function(denoiser, x_tilde, sigmas, disable=True, **arguments)
        return numeric.s(ts[-1]) * out

    def integrate(self, model, schedule, x, ts, noise):
        """As :meth:`PeerSampler.integrate`; for an adaptive sampler's exact law, the library's
        loop on :data:`DECISION_BATCH` seeded draws of the start law records its controller's
        decisions (accept, next step size), and the probe run replays them: the exact law of
        the steps it takes (every step is affine once they are fixed)."""
        if not (self._declared.adaptive and isinstance(x, GaussianLaw)):
            return super().integrate(model, schedule, x, ts, noise)
        decisions = []
        with self._controller(decisions, replay=False):
            self.run(model, schedule, decision_draws(x), ts, None, 0)
        with self._controller(decisions, replay=True):
            return probe_law(self, model, schedule, x, ts)

    @contextlib.contextmanager
    def _controller(self, decisions: list, replay: bool):
        """k-diffusion's PIDStepSizeController, recording each (accept, h) it proposes into
        ``decisions``, or (``replay``) proposing those instead of reading the error."""
        module = sampling_module()
        original = module.PIDStepSizeController

        class Recording(original):
            def propose_step(self, error):
                accept = super().propose_step(error)
                decisions.append((accept, self.h))
                return accept

        class Replaying(original):
            served = 0

            def propose_step(self, error):
                if self.served >= len(decisions):
                    raise RuntimeError("k-diffusion's adaptive loop took more steps on the probe "
                                       "than on the draws it decided them on")
                accept, self.h = decisions[self.served]
                self.served += 1
                return accept

        module.PIDStepSizeController = Replaying if replay else Recording
        try:
            yield
        finally:
            module.PIDStepSizeController = original

    def _noise_sampler(self, like, sigmas, noise: ProbeNoise | None, seed: int):
        """k-diffusion's Brownian tree in σ (its default for the SDE samplers), seeded from the
        study's seed; or the probe's noise, with the same Brownian semantics."""
        if noise is None:
            return sampling_module().BrownianTreeNoiseSampler(
                like, sigmas.min(), sigmas.max(), seed=derive_seed(seed, "k-diffusion") % 2**63)
        return lambda sigma, sigma_next: noise.draw(like, float(sigma), float(sigma_next))
