"""diffusers' schedulers as study entries, run in diffusers' own loop::

    scheduler.set_timesteps(N)
    for t in scheduler.timesteps:
        x = scheduler.step(network(scheduler.scale_model_input(x, t), t), t, x).prev_sample

**The exact network.** diffusers' schedulers address a network by a timestep τ of a discrete
training table ᾱ_τ (σ_τ = √((1 − ᾱ_τ)/ᾱ_τ)). The table is built from the study's schedule: its
``train_steps`` σ's are log-uniform between σ(t_min) and σ(t_max) (``trained_betas`` =
1 − ᾱ_τ/ᾱ_{τ−1}), so τ ∝ log σ and the scheduler's default "linspace" spacing is sdebench's
``logsnr`` grid. At a τ between nodes the network reads σ by interpolating log σ of the
scheduler's own (float32) table linearly — k-diffusion's convention and diffusers'
``_sigma_to_t`` — and returns the exact ε̂ = (x̃ − D(x̃; σ))/σ from the problem's denoiser, with
x̃ = x_τ √(1 + σ²) (the ε-prediction network a VP model is trained to be). The EDM schedulers
instead call F(c_in x̃, c_noise = ¼ ln σ) with D = c_skip x̃ + c_out F (Karras et al. 2022,
Table 1; diffusers' ``precondition_outputs``); the exact F follows from D.

**Settings that make a scheduler solve the study's problem** (recorded with every result and
overridable as spec parameters): the table above; ``final_sigmas_type = "sigma_min"``, so the
output lies at σ(t_min) where the study measures it (the default "zero" jumps to the data);
for DDIM ``set_alpha_to_one = False``, ``timestep_spacing = "trailing"`` (its default "leading"
never starts at τ = T − 1, so its first step starts at a σ below the start's; Lin et al. 2024,
Table 2) and ``clip_sample = False`` (clipping x̂₀ to [−1, 1] is wrong for data outside it). A
train table of 1024 nodes makes every power-of-two step count divide it, as DDIM's
``prev_timestep = t − T // N`` needs. Heun always appends σ = 0: its output lies at σ = 0.

**Precision.** diffusers keeps σ tables and step coefficients in float32 and casts the state to
float32 inside ``step`` (DPMSolverMultistep, Euler, EDMEuler: "Upcast to avoid precision
issues"), so its samplers are float32 methods whatever the state's dtype: ``precision =
float32`` sets their round-off floor and the probe's affinity tolerance.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import warnings
from dataclasses import dataclass

import torch

from sdebench.peers.base import PeerSampler, PeerUnavailable, ProbeNoise
from sdebench.registry import SpecError
from sdebench.seeding import derive_seed

TRAIN_STEPS = 1024
EDM = "edm"
VP = "vp"
VE = "ve"


@dataclass(frozen=True)
class Scheduler:
    """One diffusers scheduler: the form of its state (``vp``: x_τ = √ᾱ x₀ + √(1 − ᾱ) ε;
    ``ve``: x̃ = x₀ + σ ε with a VP network; ``edm``: x̃ with an EDM-preconditioned network), the
    settings of the module docstring, and its declarations as functions of its options."""

    state: str
    settings: dict
    order: object
    order_source: object
    twin: object = lambda options: ""
    nfe_per_step: float = 1
    stochastic: object = lambda options: False
    convention: str = ""
    noise_argument: str = ""
    choices: tuple = ()  # (option, the values declared for, why others are refused)


_FINAL = {"final_sigmas_type": "sigma_min"}
_EDM_THREE = "Karras et al. 2022, §3"
_DPM_SOURCES = {1: "Lu et al. 2022b: first order, equivalent to DDIM (diffusers docstring)",
                2: "Lu et al. 2022b, Alg. 2: second-order multistep (diffusers docstring)",
                3: "Lu et al. 2022b, §4: third-order multistep (diffusers docstring)"}


_ORDERS_1_TO_3 = ("solver_order", (1, 2, 3), "its step has branches for orders 1 to 3 only: "
                  "another value would run as one of them, against the order it declares")


def _solver_order(options: dict, default: int = 2) -> int:
    return int(options.get("solver_order", default))


def _same_method(options: dict, keeping: set) -> bool:
    """Whether the options change nothing but ``keeping`` (and the algorithm type between
    DPM-Solver++ and its SDE variant): any other option (an ε-prediction algorithm, another
    solver_type, …) may be another method, so no sdebench twin is claimed."""
    algorithm = options.get("algorithm_type", "dpmsolver++")
    return algorithm in ("dpmsolver++", "sde-dpmsolver++") and set(options) <= keeping | {
        "algorithm_type"}


def _is_sde(options: dict) -> bool:
    return options.get("algorithm_type", "dpmsolver++") in ("sde-dpmsolver++", "sde-dpmsolver")


SCHEDULERS = {
    "EulerDiscreteScheduler": Scheduler(
        VE, dict(_FINAL), lambda o: 1, lambda o: f"{_EDM_THREE}: Euler's method, first order",
        twin=lambda o: "euler", convention="σ at its fractional timesteps is interpolated linearly "
        "in σ (np.interp), while σ → timestep (_sigma_to_t) and the network are linear in log σ; "
        "steps x̃ = x/s in σ, sdebench's euler x in t (the same where s = 1, σ = t: edm)"),
    "HeunDiscreteScheduler": Scheduler(
        VE, {}, lambda o: 2, lambda o: f"{_EDM_THREE} and Alg. 1: Heun's method, O(h³) local "
        "error", twin=lambda o: "heun", nfe_per_step=2,
        convention="always ends with an Euler step to σ = 0 (no final_sigmas_type): its output "
        "is at σ = 0, the study's truth at σ(t_min)"),
    "DDIMScheduler": Scheduler(
        VP, {"set_alpha_to_one": False, "timestep_spacing": "trailing", "clip_sample": False},
        lambda o: 1, lambda o: "Song, Meng & Ermon 2021, §4.3 eq. 13–14 (Euler on the ODE in "
        "(σ, x/s)); Lu et al. 2022, §4.1: DDIM = DPM-Solver-1",
        twin=lambda o: ({0.0: "ddim", 1.0: "ancestral"}.get(float(o.get("eta", 0.0)), "")
                        if _same_method(o, {"eta"}) else ""), noise_argument="variance_noise",
        stochastic=lambda o: bool(o.get("eta")),
        convention="ε-prediction in x_τ = √ᾱ x₀ + √(1 − ᾱ) ε with float32 ᾱ"),
    "DPMSolverMultistepScheduler": Scheduler(
        VP, dict(_FINAL),
        lambda o: (2 if _solver_order(o) >= 2 else 1) if _is_sde(o) else _solver_order(o),
        lambda o: ("the same method as sdebench's dpmpp_2m_sde (agreement column); Lu et al. "
                   "2022b §5" if _is_sde(o) and _solver_order(o) == 2 else
                   "DDIM with η = 1 in λ (first-order SDE-DPM-Solver++)" if _is_sde(o)
                   else _DPM_SOURCES.get(_solver_order(o), "")),
        twin=lambda o: {(False, 2): "dpmpp_2m", (True, 2): "dpmpp_2m_sde",
                        (True, 1): "ancestral", (False, 1): "ddim"}.get(
            (_is_sde(o), _solver_order(o)), "") if _same_method(o, {"solver_order"}) else "",
        stochastic=_is_sde, noise_argument="variance_noise", choices=(_ORDERS_1_TO_3,),
        convention="lower_order_final (default True): below 15 steps its last step is first "
        "order, sdebench's is not"),
    "DPMSolverSinglestepScheduler": Scheduler(
        VP, dict(_FINAL), lambda o: _solver_order(o),
        lambda o: f"Lu et al. 2022, Thm. 3.2 (DPM-Solver-{_solver_order(o)}), DPM-Solver++ "
        "data-prediction form (Lu et al. 2022b, Alg. 1)",
        choices=(_ORDERS_1_TO_3, ("algorithm_type", ("dpmsolver++", "dpmsolver"),
                                  "its SDE variant draws noise, and sdebench declares no "
                                  "stochastic form or order for it")),
        convention="a k-th order step spans k grid intervals (orders cycle 1, 2, …, k)"),
    "UniPCMultistepScheduler": Scheduler(
        VP, dict(_FINAL), lambda o: _solver_order(o) + 1,
        lambda o: "diffusers docstring: 'the effective order of accuracy is solver_order + 1 "
        "due to the UniC' (Zhao et al. 2023)", twin=lambda o: "unipc_bh2" if _solver_order(o) == 2
        and _same_method(o, {"solver_order"}) else "",
        convention="lower_order_final (default True): its last step is first order at every "
        "step count, sdebench's unipc_bh2 keeps order 2"),
    "EDMEulerScheduler": Scheduler(
        EDM, dict(_FINAL), lambda o: 1, lambda o: f"{_EDM_THREE}: Euler's method, first order",
        twin=lambda o: "euler", convention="EDM's ρ = 7 grid with N σ's (N − 1 steps and a "
        "zero-length last step under final_sigmas_type='sigma_min'); the network reads c_noise "
        "= ¼ ln σ in float32"),
}


def _library():
    try:
        import diffusers
    except ImportError as error:
        raise PeerUnavailable("diffusers is not installed: pip install 'sdebench[peers]'") \
            from error
    return diffusers


def sigma_table(schedule, train_steps: int = TRAIN_STEPS) -> torch.Tensor:
    """σ_τ, τ = 0 … train_steps − 1, log-uniform between σ(t_min) and σ(t_max) (float64)."""
    numeric = schedule.numeric
    ends = numeric.sigma(torch.tensor([float(schedule.t_min), float(schedule.t_max)],
                                      dtype=torch.float64))
    return torch.exp(torch.linspace(float(ends[0].log()), float(ends[1].log()), train_steps,
                                    dtype=torch.float64))


def trained_betas(sigmas: torch.Tensor) -> list[float]:
    """β_τ with Π_{k≤τ}(1 − β_k) = ᾱ_τ = 1/(1 + σ_τ²)."""
    alphas_cumprod = 1 / (1 + sigmas**2)
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    return (1 - alphas_cumprod / previous).tolist()


class DiffusersSampler(PeerSampler):
    """``diffusers.<Scheduler>`` with its options (every constructor keyword; ``eta`` for
    DDIM's step); see the module docstring for the network, settings and precision."""

    library = "diffusers"
    strong_order = None
    noise_kind = "independent"
    precision = torch.float32

    def __init__(self, method: str, train_steps: int = TRAIN_STEPS, **options):
        if method not in SCHEDULERS:
            raise SpecError(f"unknown diffusers scheduler {method!r}; expected one of "
                            f"{sorted(SCHEDULERS)}")
        self.method, self.train_steps = method, int(train_steps)
        self._declared = SCHEDULERS[method]
        self._class = getattr(_library(), method)
        accepted = set(inspect.signature(self._class.__init__).parameters) - {"self"}
        step_options = {"eta"} if method == "DDIMScheduler" else set()
        unknown = sorted(set(options) - accepted - step_options)
        if unknown:
            raise SpecError(f"diffusers {method} takes no option {unknown}; its options are "
                            f"{sorted(accepted | step_options)}")
        if options.get("prediction_type", "epsilon") != "epsilon":
            raise SpecError(f"diffusers {method}: the exact network sdebench gives it predicts "
                            f"ε (EDM: F), so prediction_type={options['prediction_type']!r} "
                            "would measure a mismatched network, not the scheduler")
        for option, declared, why in self._declared.choices:
            if option in options and options[option] not in declared:
                raise SpecError(f"diffusers {method}: {option}={options[option]!r} is not one of "
                                f"{declared}: {why}")
        if self.train_steps < 2:
            raise SpecError(f"diffusers {method}: train_steps must be at least 2, got {train_steps!r}")
        self.options = dict(options)
        self.eta = float(options.get("eta", 0.0))

    @property
    def stochastic(self) -> bool:
        return self._declared.stochastic(self.options)

    @property
    def order(self):
        return self._declared.order(self.options)

    @property
    def order_source(self) -> str:
        return self._declared.order_source(self.options)

    @property
    def twin(self) -> str:
        return self._declared.twin(self.options)

    @property
    def convention(self) -> str:
        return self._declared.convention

    @property
    def steps_on(self) -> str:
        """The grid it steps on: its own timesteps, whatever the study's ``--grid`` (which still
        sets the start and end times)."""
        if self._declared.state == EDM:
            return ("its own σ grid (sigma_schedule and rho of its settings), not the study's "
                    "--grid")
        spacing = self._settings().get("timestep_spacing", "its default")
        return f"its own timesteps ({spacing} spacing of {self.train_steps}), not the study's --grid"

    @property
    def nfe_per_step(self) -> float:
        return self._declared.nfe_per_step

    def parameters(self) -> dict:
        return {"method": self.method, "version": importlib.metadata.version("diffusers"),
                "train_steps": self.train_steps, **self._settings()}

    def _settings(self) -> dict:
        settings = {**self._declared.settings, **self.options}
        settings.pop("eta", None)
        if self._declared.state != EDM:
            settings.setdefault("prediction_type", "epsilon")
        return settings

    def _new_scheduler(self, schedule):
        """The scheduler on the study's training table (module docstring)."""
        table = sigma_table(schedule, self.train_steps)
        if self._declared.state == EDM:
            extra = {"sigma_min": float(table[0]), "sigma_max": float(table[-1])}
        else:
            extra = {"num_train_timesteps": self.train_steps, "trained_betas": trained_betas(table)}
        return self._class(**extra, **self._settings())

    def _scheduler(self, schedule):
        """:meth:`_new_scheduler`, refused where its float32 table cannot hold the schedule's
        smallest σ (a unit fails with the reason; before, its outputs were NaN)."""
        scheduler = self._new_scheduler(schedule)
        alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
        if alphas_cumprod is not None and bool((alphas_cumprod >= 1).any()):
            sigma_min = float(sigma_table(schedule, self.train_steps)[0])
            raise ValueError(
                f"diffusers.{self.method} cannot represent {schedule.name!r}: at σ(t_min) = "
                f"{sigma_min:.3g} its float32 table rounds 1 − β = ᾱ_τ/ᾱ_τ₋₁ to 1 (β below "
                "float32's half-spacing below 1, 2⁻²⁵), so σ = 0 there; use a schedule whose "
                "σ(t_min) is above 2.5e-4")
        return scheduler

    def check_options(self, schedule, steps: int) -> None:
        """Make the scheduler for ``schedule`` and take its ``steps`` steps on one zero state with
        a zero network, so that an option value it rejects (``algorithm_type='bogus'``,
        ``solver_order=5``) stops the study before its first unit, naming the option."""
        try:
            with self._quiet(), torch.random.fork_rng(devices=[]):  # leaves torch's RNG as it was
                scheduler = self._new_scheduler(schedule)  # options only: a unit says the rest
                scheduler.set_timesteps(steps)
                state, generator = torch.zeros(1, 1), torch.Generator().manual_seed(0)
                for t in scheduler.timesteps:
                    state = scheduler.step(torch.zeros_like(state), t, state, **self._step_arguments(
                        state, None, generator)).prev_sample
        except Exception as error:  # whatever the library raises, said as a spec error
            raise SpecError(f"{self!r} cannot run {steps} steps on {schedule.name!r}: "
                            f"{type(error).__name__}: {error}") from error

    @contextlib.contextmanager
    def _quiet(self):
        """diffusers' log below errors (DPMSolverSinglestep warns on every set_timesteps) and
        numpy 2's __array__(copy=) deprecation notice (every step) silenced."""
        logging = _library().utils.logging
        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="diffusers")
                yield
        finally:
            logging.set_verbosity(verbosity)

    def _step_arguments(self, state, noise: ProbeNoise | None, generator) -> dict:
        """``step``'s keywords: DDIM's eta; the noise of a stochastic scheduler (the probe's
        draw, or the library's own from ``generator``)."""
        arguments = {"eta": self.eta} if self.method == "DDIMScheduler" else {}
        if self.stochastic:
            if noise is not None:
                arguments[self._declared.noise_argument] = noise.draw(state)
            else:
                arguments["generator"] = generator
        return arguments

    def run(self, model, schedule, x, ts, noise: ProbeNoise | None, seed: int) -> torch.Tensor:
        with self._quiet():
            return self._run(model, schedule, x, ts, noise, seed)

    def _run(self, model, schedule, x, ts, noise: ProbeNoise | None, seed: int) -> torch.Tensor:
        numeric = schedule.numeric
        scheduler = self._scheduler(schedule)
        scheduler.set_timesteps(ts.numel() - 1, device=x.device)
        network = self._network(scheduler, model, numeric)
        sigma_max, sigma_min = numeric.sigma(ts[0]), numeric.sigma(ts[-1])
        state = x / numeric.s(ts[0])
        if self._declared.state == VP:
            state = state / torch.sqrt(1 + sigma_max**2)
        generator = None
        if self.stochastic and noise is None:
            generator = torch.Generator(x.device).manual_seed(
                derive_seed(seed, "diffusers") % 2**63)
        for t in scheduler.timesteps:
            prediction = network(scheduler.scale_model_input(state, t), t)
            state = scheduler.step(prediction, t, state,
                                   **self._step_arguments(state, noise, generator)).prev_sample
        if self._declared.state == VP:
            state = state * torch.sqrt(1 + sigma_min**2)
        return numeric.s(ts[-1]) * state

    def grid_sigmas(self, schedule, ts: torch.Tensor) -> torch.Tensor | None:
        """The σ's the scheduler steps between for this study's step count (its float32 values,
        zero-length steps dropped), or None where its grid ends at σ = 0 (Heun)."""
        with self._quiet():  # HeunDiscrete sets timesteps (numpy's notice) in its constructor
            scheduler = self._scheduler(schedule)
            scheduler.set_timesteps(ts.numel() - 1)
        if hasattr(scheduler, "sigmas"):
            sigmas = scheduler.sigmas.to(torch.float64)
        else:  # DDIM: ᾱ at its timesteps, then its final ᾱ
            alphas = torch.cat([scheduler.alphas_cumprod[scheduler.timesteps],
                                scheduler.final_alpha_cumprod.reshape(1)]).to(torch.float64)
            sigmas = torch.sqrt((1 - alphas) / alphas)
        sigmas = torch.unique_consecutive(sigmas)
        return None if bool((sigmas <= 0).any()) else sigmas

    def _network(self, scheduler, model, numeric):
        """The exact network in the scheduler's convention (module docstring)."""

        def denoise(x_tilde, sigma):
            t = numeric.sigma_inv(sigma)
            return model(numeric.s(t) * x_tilde, t)

        if self._declared.state == EDM:
            sigma_data = scheduler.config.sigma_data

            def network(model_input, c_noise):
                sigma = torch.exp(4 * c_noise.to(torch.float64)).to(model_input)
                scale = torch.sqrt(sigma**2 + sigma_data**2)
                x_tilde = model_input * scale
                c_skip, c_out = sigma_data**2 / scale**2, sigma * sigma_data / scale
                return (denoise(x_tilde, sigma) - c_skip * x_tilde) / c_out

            return network

        alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
        # on the timesteps' device: two CPU scalars beside a CUDA weight cannot share a kernel
        log_sigmas = (0.5 * torch.log((1 - alphas_cumprod) / alphas_cumprod)).to(
            scheduler.timesteps.device)

        def network(x_vp, timestep):
            tau = timestep.to(torch.float64).clamp(0, len(log_sigmas) - 1)
            low = tau.floor().long().clamp(max=len(log_sigmas) - 2)
            weight = tau - low
            sigma = torch.exp(torch.lerp(log_sigmas[low], log_sigmas[low + 1], weight)).to(x_vp)
            x_tilde = x_vp * torch.sqrt(1 + sigma**2)
            return (x_tilde - denoise(x_tilde, sigma)) / sigma

        return network

