"""The peer samplers' names, registered in the sampler catalogue as ``<library>.<method>``
(``kdiffusion.dpmpp_2m``, ``diffusers.DPMSolverMultistepScheduler``), options as spec
parameters (``kdiffusion.lms:order=3``). sdebench loads this module as a plugin (entry point
``sdebench.plugins``), as it would a user's library; nothing here imports a peer library until
a sampler is made."""

from __future__ import annotations

from sdebench.peers import agreement  # noqa: F401 - registers the metric "agreement"
from sdebench.peers.base import PeerUnavailable
from sdebench.peers.diffusers import SCHEDULERS, DiffusersSampler
from sdebench.peers.kdiffusion import METHODS, KDiffusionSampler
from sdebench.solvers.catalogue import register_sampler


def _factory(cls, method: str, doc: str):
    def make(**options):
        return cls(method, **options)

    make.__doc__ = doc
    make.peer_library = cls.library  # the group 'peers', not 'all' (solvers.catalogue.sampler_groups)
    return make


for _method in METHODS:
    register_sampler(f"kdiffusion.{_method}", _factory(
        KDiffusionSampler, _method, f"k-diffusion's sample_{_method}; options: its keywords."))
for _method in SCHEDULERS:
    register_sampler(f"diffusers.{_method}", _factory(
        DiffusersSampler, _method, f"diffusers' {_method}; options: its constructor keywords."))


def missing_libraries() -> str:
    """'' where both peer libraries load (diffusers, torchsde, k-diffusion's sampling module),
    else why not, with the install commands — for the scripts that need them all."""
    from sdebench.peers.kdiffusion import sampling_module

    try:
        import diffusers  # noqa: F401
        import torchsde  # noqa: F401

        sampling_module()
    except (ImportError, PeerUnavailable) as error:
        return ("needs the peer libraries: pip install 'sdebench[peers]' and pip install "
                f"--no-deps k-diffusion ({error})")
    return ""
