"""The memory traffic of a sampler's own arithmetic, counted by instrumenting a run: the bytes of
state-sized tensors that its operations read and write, outside the model.

Every aten operation of the run passes through :class:`StateTraffic` (a
``TorchDispatchMode``, PyTorch's hook below autograd where each call is one kernel). An
operation reads each tensor argument once and writes each tensor it returns or mutates once —
the traffic of a kernel that streams its operands (Williams, Waterman & Patterson 2009, the
roofline model's "operational intensity" counts the same bytes). What is counted:

* only tensors of at least the state's number of elements: coefficients, per-coordinate tables
  and per-sample norms are smaller and stay in cache;
* views (``view``, ``t``, ``expand``, ...) and allocations (``empty``) move nothing; ``*_like``
  and ``new_*`` operations read only their argument's shape;
* an in-place operation reads and writes its target (``add_``), except those that overwrite it
  without reading (``copy_``, ``fill_``, ``zero_`` and the random fills); an ``out=`` tensor is
  written, not read;
* nothing inside the model: its time is measured as the floor, so a run's traffic is the
  sampler's own (the state, the model's output once returned, history buffers, noise draws,
  the NaN/Inf checks). Wrap the model with :meth:`StateTraffic.model`.

Writes by random operations (``torch.randn``; PyTorch's ``nondeterministic_seeded`` tag) are
also kept apart as ``noise_bytes``: on a CPU drawing a normal costs far more than writing it
(mt19937 and Box–Muller), so :mod:`sdebench.studies.timing` charges noise at its measured time.
``kernels`` counts every operation outside the model, scalar ones included (the schedule's
coefficients): the per-step launch and Python overhead scales with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_ALLOCATIONS = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
                          "resize_"})
_OVERWRITES = frozenset({"copy_", "fill_", "zero_"})


@dataclass(frozen=True)
class Traffic:
    """What one instrumented run moved outside the model."""

    read_bytes: int
    write_bytes: int
    noise_bytes: int
    kernels: int

    @property
    def bytes(self) -> int:
        """Reads plus writes (noise writes included)."""
        return self.read_bytes + self.write_bytes

    def without(self, call: Traffic, count: int) -> Traffic:
        """This run's traffic less ``count`` times ``call``'s: a run whose model is seen through
        a wrapper (diffusers' ε-network around the denoiser) that the floor times whole, so the
        wrapper's own bytes, counted once per call by ``call``, belong to the floor, not the run.
        Raises ValueError where any count would go negative (``call`` is not in the run)."""
        left = Traffic(*(mine - count * its for mine, its in zip(
            (self.read_bytes, self.write_bytes, self.noise_bytes, self.kernels),
            (call.read_bytes, call.write_bytes, call.noise_bytes, call.kernels), strict=True)))
        if min(left.read_bytes, left.write_bytes, left.noise_bytes, left.kernels) < 0:
            raise ValueError(f"{count} × {call} is more than the run's {self}")
        return left


class StateTraffic(TorchDispatchMode):
    """Counts bytes of tensors with at least ``state_numel`` elements read and written by each
    aten operation run under it (``with StateTraffic(x.numel()) as traffic: ...``), outside
    calls of a model wrapped by :meth:`model`."""

    def __init__(self, state_numel: int):
        super().__init__()
        if state_numel < 1:
            raise ValueError(f"state_numel must be >= 1, got {state_numel}")
        self.state_numel = state_numel
        self.read_bytes = self.write_bytes = self.noise_bytes = self.kernels = 0
        self._in_model = 0

    def model(self, fn: Callable) -> Callable:
        """``fn`` with its own operations left uncounted (the model, whose time is the floor)."""
        def model(*args, **kwargs):
            self._in_model += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._in_model -= 1
        return model

    def result(self) -> Traffic:
        return Traffic(self.read_bytes, self.write_bytes, self.noise_bytes, self.kernels)

    def _sized(self, value) -> int:
        """Bytes of ``value`` if it is a tensor of at least the state's size, else 0."""
        if isinstance(value, torch.Tensor) and value.numel() >= self.state_numel:
            return value.numel() * value.element_size()
        return 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if self._in_model or func.is_view or name in _ALLOCATIONS:
            return out
        self.kernels += 1
        schema = func._schema
        bound = dict(zip((a.name for a in schema.arguments), args, strict=False)) | kwargs
        reads = writes = 0
        shape_only = name.endswith("_like") or name.startswith("new_")
        for argument in schema.arguments:
            value = bound.get(argument.name)
            size = sum(self._sized(leaf) for leaf in tree_leaves(value))
            mutated = argument.alias_info is not None and argument.alias_info.is_write
            if mutated:
                writes += size
                # an in-place update reads its target; out= and overwriting fills do not
                overwrite = (argument.kwarg_only or name in _OVERWRITES
                             or torch.Tag.nondeterministic_seeded in func.tags)
                reads += 0 if overwrite else size
            elif not shape_only:
                reads += size
        fresh = [value for value, returned in zip(
            out if isinstance(out, tuple | list) else (out,), schema.returns, strict=False)
            if returned.alias_info is None]
        fresh_bytes = sum(self._sized(leaf) for leaf in tree_leaves(fresh))
        writes += fresh_bytes
        if torch.Tag.nondeterministic_seeded in func.tags:
            self.noise_bytes += writes
        self.read_bytes += reads
        self.write_bytes += writes
        return out


def count_traffic(run: Callable[[Callable], object], model: Callable, state_numel: int) -> Traffic:
    """The traffic of ``run(counted_model)`` outside the model (one instrumented call)."""
    with StateTraffic(state_numel) as traffic:
        run(traffic.model(model))
    return traffic.result()
