"""The catalogue of schedules with their literature constants.

Each constructor returns a :class:`~theory.schedule.Schedule` from ``s(t)`` and ``σ(t)`` only;
f, g, SNR and conversions derive from them. ``theory/claims/published.py`` checks that the derived
f and g equal the formulas printed in the papers.
"""

from __future__ import annotations

import sympy

from sdebench.registry import Registry, Spec, check_number, parse_spec
from sdebench.theory.beta_tables import (
    BetaTable,
    integrated_linear_beta,
    time_of_integrated_linear_beta,
)
from sdebench.theory.kernel import T
from sdebench.theory.schedule import SIGMA, Schedule, exact_number

SCHEDULES = Registry("schedule")
"""The schedule catalogue: name → constructor taking the schedule's parameters as keywords.
Extend it with ``@register_schedule("name")`` (or ``SCHEDULES.register``)."""

register_schedule = SCHEDULES.register


def _linear_betas(beta_min, beta_max):
    """β_min, β_max as exact numbers, refused unless β(t) = β_min + t(β_max − β_min) > 0 on
    (0, 1]: β_min ≥ 0 and β_max > 0."""
    beta_min = check_number("beta_min", exact_number(beta_min, "beta_min"), low=0)
    beta_max = check_number("beta_max", exact_number(beta_max, "beta_max"), low=0, low_open=True)
    return beta_min, beta_max


@register_schedule("vp")
def vp_linear(beta_min=sympy.Rational(1, 10), beta_max=20, t_min=sympy.Rational(1, 1000),
              t_max=1) -> Schedule:
    """VP SDE with linear β (Song et al. 2021, eq. 11 and App. B; EDM Table 1).

    s = exp(−B/2), σ = √(e^B − 1), B(t) = β_min t + ½(β_max − β_min) t²; t_min = 10⁻³ is Song et
    al.'s sampling ε.
    """
    beta_min, beta_max = _linear_betas(beta_min, beta_max)
    b = integrated_linear_beta(beta_min, beta_max)
    return Schedule(
        "vp",
        s=sympy.exp(-b / 2),
        sigma=sympy.sqrt(sympy.exp(b) - 1),
        t_min=t_min,
        t_max=t_max,
        sigma_inverse=time_of_integrated_linear_beta(sympy.log(1 + SIGMA**2), beta_min, beta_max),
        reference="Song et al. 2021 (ICLR), eq. 11; Karras et al. 2022, Table 1 (VP)",
    )


@register_schedule("subvp")
def subvp(beta_min=sympy.Rational(1, 10), beta_max=20, t_min=sympy.Rational(1, 1000),
          t_max=1) -> Schedule:
    """sub-VP SDE (Song et al. 2021, eq. 29): mean e^{−B/2} x₀, std 1 − e^{−B}.

    Hence s = e^{−B/2} and σ = (1 − e^{−B}) / e^{−B/2} = 2 sinh(B/2).
    """
    beta_min, beta_max = _linear_betas(beta_min, beta_max)
    b = integrated_linear_beta(beta_min, beta_max)
    return Schedule(
        "subvp",
        s=sympy.exp(-b / 2),
        sigma=2 * sympy.sinh(b / 2),
        t_min=t_min,
        t_max=t_max,
        sigma_inverse=time_of_integrated_linear_beta(2 * sympy.asinh(SIGMA / 2), beta_min, beta_max),
        reference="Song et al. 2021 (ICLR), eq. 29 and App. C",
    )


def _cosine_t_of_sigma(phi0, offset):
    """t(σ) of the cosine schedule: cos φ = cos φ₀/√(1 + σ²), so φ = atan(y) with
    y = R/cos φ₀, R = √(σ² + sin²φ₀), and t = (φ − φ₀)·2(1 + c)/π. With y₀ = tan φ₀,
    atan y − atan y₀ = atan((y − y₀)/(1 + y y₀)) and y − y₀ = σ²/(cos φ₀ (R + sin φ₀)):
    no step cancels near t_min (acos(cos φ₀/√(1 + σ²)) − c lost 10⁻¹² relative there)."""
    sin_phi0, cos_phi0 = sympy.sin(phi0), sympy.cos(phi0)
    r = sympy.sqrt(SIGMA**2 + sin_phi0**2)
    phi_minus_phi0 = sympy.atan(SIGMA**2 * cos_phi0 / ((r + sin_phi0) * (cos_phi0**2 + r * sin_phi0)))
    return phi_minus_phi0 * 2 * (1 + offset) / sympy.pi


@register_schedule("vp_cosine")
def vp_cosine(offset=sympy.Rational(8, 1000), t_min=sympy.Rational(1, 1000),
              t_max=sympy.Rational(9946, 10000)) -> Schedule:
    """VP with the cosine schedule ᾱ(t) = cos²(φ(t))/cos²(φ(0)), φ(t) = (t + c)/(1 + c) · π/2
    (Nichol & Dhariwal 2021, eq. 17, c = 0.008). t_max = 0.9946 keeps λ finite, as in
    DPM-Solver's continuous cosine schedule (Lu et al. 2022, App. D.1).

    σ² = 1/s² − 1 = (cos²φ₀ − cos²φ)/cos²φ is written as sin(φ − φ₀) sin(φ + φ₀)/cos²φ (the same
    function): the difference of squares cancels half of float32's digits near t_min, where
    s ≈ 1; φ − φ₀ = t/(1 + c) · π/2 has no cancellation.
    """
    offset = check_number("offset", exact_number(offset, "offset"), low=0)
    phi = (T + offset) / (1 + offset) * sympy.pi / 2
    phi0 = offset / (1 + offset) * sympy.pi / 2
    cos_phi0 = sympy.cos(phi0)
    s = sympy.cos(phi) / cos_phi0
    return Schedule(
        "vp_cosine",
        s=s,
        sigma=sympy.sqrt(sympy.sin(T / (1 + offset) * sympy.pi / 2) * sympy.sin(phi + phi0))
        / sympy.cos(phi),
        t_min=t_min,
        t_max=t_max,
        sigma_inverse=_cosine_t_of_sigma(phi0, offset),
        reference="Nichol & Dhariwal 2021, eq. 17",
    )


@register_schedule("ve")
def ve_geometric(sigma_min=sympy.Rational(1, 100), sigma_max=50, t_min=sympy.Rational(1, 10**5),
                 t_max=1) -> Schedule:
    """VE SDE with geometric noise σ(t) = σ_min (σ_max/σ_min)^t, s = 1 (Song et al. 2021, eq. 9
    and App. C; SMLD/NCSN of Song & Ermon 2019). t_min = 10⁻⁵ is Song et al.'s sampling ε.
    """
    sigma_min = check_number("sigma_min", exact_number(sigma_min, "sigma_min"), low=0, low_open=True)
    sigma_max = check_number("sigma_max", exact_number(sigma_max, "sigma_max"), low=sigma_min,
                             low_open=True)
    return Schedule(
        "ve",
        s=sympy.Integer(1),
        sigma=sigma_min * (sigma_max / sigma_min) ** T,
        t_min=t_min,
        t_max=t_max,
        sigma_inverse=sympy.log(SIGMA / sigma_min) / sympy.log(sigma_max / sigma_min),
        reference="Song et al. 2021 (ICLR), eq. 9 and App. C",
    )


@register_schedule("edm")
def edm(sigma_min=sympy.Rational(2, 1000), sigma_max=80) -> Schedule:
    """EDM: σ(t) = t, s(t) = 1 on σ ∈ [0.002, 80] (Karras et al. 2022, Table 1). σ_min = 0 is
    allowed (the sampler then ends on the data; only grids and solvers that reach σ = 0 apply)."""
    sigma_min = check_number("sigma_min", exact_number(sigma_min, "sigma_min"), low=0)
    sigma_max = check_number("sigma_max", exact_number(sigma_max, "sigma_max"), low=sigma_min,
                             low_open=True)
    return Schedule(
        "edm",
        s=sympy.Integer(1),
        sigma=T,
        t_min=sigma_min,
        t_max=sigma_max,
        sigma_inverse=SIGMA,
        reference="Karras et al. 2022 (NeurIPS), Table 1 and §3",
    )


@register_schedule("vp0snr")
def vp_zero_terminal_snr(beta_min=sympy.Rational(1, 10), beta_max=20,
                         t_min=sympy.Rational(1, 1000)) -> Schedule:
    """VP with linear β rescaled to zero terminal SNR (Lin et al. 2024, "Common Diffusion Noise
    Schedules and Sample Steps are Flawed", §3.1 and Alg. 1, in continuous time): √ᾱ is shifted
    so that it reaches 0 at t = 1 and scaled so that it keeps its value at t = 0,

        s(t) = (e^{−B(t)/2} − k)/(1 − k),  k = e^{−B(1)/2},     σ = √(1 − s²)/s  (VP: s²(1 + σ²) = 1),

    so x₁ = ε exactly (s = 0, σ = ∞, a pure-noise end). 1 − s = (1 − e^{−B/2})/(1 − k) is written
    as such, so that σ near t_min does not lose digits in 1 − s²."""
    beta_min, beta_max = _linear_betas(beta_min, beta_max)
    b = integrated_linear_beta(beta_min, beta_max)
    k = sympy.exp(-b.subs(T, 1) / 2)
    one_minus_s = (1 - sympy.exp(-b / 2)) / (1 - k)
    # e^{−B/2} − k = k (e^{(B(1) − B)/2} − 1), B(1) − B(t) = (1 − t)(β_min + Δβ (1 + t)/2): zero
    # at t = 1 in floating point too (a difference of two exponentials leaves 10⁻¹⁸ there)
    remaining = (1 - T) * (beta_min + (beta_max - beta_min) * (1 + T) / 2)
    s = k * (sympy.exp(remaining / 2) - 1) / (1 - k)
    # t(σ): e^{−B/2} = k + (1 − k) s with s = 1/√(1 + σ²), 1 − s = σ²/(√(1 + σ²)(1 + √(1 + σ²)))
    root = sympy.sqrt(1 + SIGMA**2)
    b_of_sigma = -2 * sympy.log(1 - (1 - k) * SIGMA**2 / (root * (1 + root)))
    return Schedule(
        "vp0snr",
        s=s,
        sigma=sympy.sqrt(one_minus_s * (2 - one_minus_s)) / s,
        t_min=t_min,
        t_max=1,
        sigma_inverse=time_of_integrated_linear_beta(b_of_sigma, beta_min, beta_max),
        reference="Lin et al. 2024 (WACV), §3.1 and Alg. 1, on Song et al. 2021's linear-β VP",
    )


@register_schedule("table")
def beta_table(beta_schedule="linear", beta_start=sympy.Rational(1, 10**4),
               beta_end=sympy.Rational(2, 100), num_train_timesteps=1000) -> Schedule:
    """The continuous-time schedule of a discrete training table (:mod:`theory.beta_tables`):
    VP, s = e^{−B/2}, σ = √(e^B − 1), with B(t) = −log ᾱ equal to the table's at t = 0 (τ = 0)
    and t = 1 (τ = T − 1) and following its β profile between. The defaults are DDPM's linear
    table (Ho et al. 2020, §4; diffusers' defaults); Stable Diffusion's is
    ``table:beta_schedule=scaled_linear:beta_start=0.00085:beta_end=0.012``. A diffusers
    scheduler studied on it builds that table itself, as it ships (:mod:`sdebench.peers.diffusers`)."""
    table = BetaTable(beta_schedule, exact_number(beta_start, "beta_start"),
                      exact_number(beta_end, "beta_end"), num_train_timesteps)
    b = table.integrated_beta()
    return Schedule(
        "table",
        s=sympy.exp(-b / 2),
        sigma=sympy.sqrt(sympy.exp(b) - 1),
        t_min=0,
        t_max=1,
        sigma_inverse=table.time_of_integrated_beta(sympy.log(1 + SIGMA**2)),
        reference="Ho et al. 2020 (NeurIPS), §2 and §4 (linear); Rombach et al. 2022 (CVPR), "
                  "latent diffusion's scaled_linear",
        table=table,
    )


def dynamic_shift_mu(image_seq_len, base_seq_len=256, max_seq_len=4096, base_shift=0.5,
                     max_shift=1.15):
    """Flux's resolution-dependent μ: linear in the number of image tokens, base_shift at
    base_seq_len and max_shift at max_seq_len (diffusers' ``calculate_shift``, the defaults of
    FLUX.1's scheduler config); the time shift is then e^μ (``time_shift_type="exponential"``)."""
    image_seq_len = check_number("image_seq_len", exact_number(image_seq_len, "image_seq_len"),
                                 low=1)
    slope = sympy.Rational(repr(max_shift)) - sympy.Rational(repr(base_shift))
    slope /= max_seq_len - base_seq_len
    return sympy.Rational(repr(base_shift)) + slope * (image_seq_len - base_seq_len)


@register_schedule("rf")
def rectified_flow(shift=1, mu=None, image_seq_len=None, time_shift_type="exponential",
                   t_min=sympy.Rational(1, 1000)) -> Schedule:
    """Rectified flow / flow matching with the linear path x_τ = (1 − τ) x₀ + τ ε (Liu et al. 2023;
    Lipman et al. 2023, eq. 20 with σ_min = 0; Albergo & Vanden-Eijnden 2023), in the time-shifted
    form of Esser et al. 2024 (SD3, §5.3.2): τ(t) = shift·t/(1 + (shift − 1) t). Hence

        s = 1 − τ = (1 − t)/(1 + (shift − 1) t),     σ = τ/(1 − τ) = shift · t/(1 − t),

    a pure-noise end at t = 1 (s = 0, sσ = 1). A shift multiplies σ by a constant: the same
    marginals at matched SNR, reached at another time (theory/claims/flow.py). Flux's dynamic
    shifting (diffusers' ``use_dynamic_shifting``) gives shift = e^μ (``time_shift_type``
    exponential) or μ (linear), with μ given or computed from ``image_seq_len`` by
    :func:`dynamic_shift_mu`. ``t_min`` = 10⁻³ keeps every sampler's last step at σ > 0;
    ``rf:t_min=0`` ends on the data (samplers that declare handles_zero_sigma).

    A flow network predicts v = ε − x₀ as a function of (x, τ): the prediction kind ``v_flow``
    (:mod:`sdebench.theory.parameterisation`)."""
    given = [name for name, value in (("shift", shift if shift != 1 else None), ("mu", mu),
                                      ("image_seq_len", image_seq_len)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"rf takes one of shift, mu, image_seq_len; got {', '.join(given)}")
    if time_shift_type not in ("exponential", "linear"):
        raise ValueError(f"time_shift_type must be 'exponential' or 'linear', got "
                         f"{time_shift_type!r}")
    if image_seq_len is not None:
        mu = dynamic_shift_mu(image_seq_len)
    if mu is not None:
        mu = exact_number(mu, "mu")
        shift = sympy.exp(mu) if time_shift_type == "exponential" else mu
    shift = check_number("shift", exact_number(shift, "shift"), low=0, low_open=True)
    return Schedule(
        "rf",
        s=(1 - T) / (1 + (shift - 1) * T),
        sigma=shift * T / (1 - T),
        t_min=t_min,
        t_max=1,
        sigma_inverse=SIGMA / (shift + SIGMA),
        reference="Liu et al. 2023 (ICLR); Lipman et al. 2023 (ICLR), eq. 20; Esser et al. 2024 "
                  "(ICML), §5.3.2 (shift)",
    )


_BUILT: dict = {}
_BUILT_SIZE = 64


def get_schedule(spec: str | Spec) -> Schedule:
    """The schedule a spec names: a catalogue name with optional parameters
    (``"vp"``, ``"vp:beta_max=10"``) or ``module:attribute`` of a constructor (or of a
    :class:`Schedule`). Its name is the canonical spec, so results record the parameters.

    Built once per spec and factory (the SymPy derivation and its 513-point validation take up
    to 3 s, and a study asks for its schedules many times): the same object is returned again
    while the name still resolves to the same factory (a name registered anew is built anew).
    A Schedule is not changed after it is made; its numeric twin caches only pure functions."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    factory = SCHEDULES.factory(spec.target)
    built = _BUILT.get(str(spec))
    if built is not None and built[0] is factory:
        return built[1]
    schedule = _build_schedule(spec)
    if len(_BUILT) >= _BUILT_SIZE:
        _BUILT.clear()
    _BUILT[str(spec)] = (factory, schedule)
    return schedule


def _build_schedule(spec: Spec) -> Schedule:
    """:func:`get_schedule` without the cache."""
    schedule = SCHEDULES.create(spec)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule {spec.target!r} must build a sdebench Schedule, got "
                        f"{type(schedule).__name__}")
    if spec.params or ":" in spec.target:
        schedule.name = str(spec)
    return schedule
