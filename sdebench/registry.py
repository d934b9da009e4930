"""Named catalogues that users extend: samplers, schedules, problems and metrics.

A *spec* names an entry and, optionally, its parameters::

    vp                              a registered name
    vp:beta_max=10:beta_min=0.2     … with parameters (values read as Python literals)
    mypkg.schedules:rectified_flow  an object imported from a module (``module:attribute``)
    mypkg.samplers:MySolver:eta=0.5 … with parameters

Entries come from three places, in this order: the built-in catalogues, ``register``
(a decorator) in user code, and installed plugins: modules named by entry points of the group
``sdebench.plugins`` (``[project.entry-points."sdebench.plugins"] mine = "mypkg.plugin"``),
imported the first time a catalogue is consulted; importing them registers their entries.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN_GROUP = "sdebench.plugins"


class SpecError(ValueError):
    """A spec names nothing known, or parameters its entry does not take."""


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the target (a name or ``module:attribute``) and its parameters."""

    target: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.target + "".join(f":{key}={value!r}" for key, value in sorted(self.params.items()))

    def __hash__(self) -> int:
        return hash(str(self))


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_spec(text: str) -> Spec:
    """Split ``target[:key=value]*`` (see the module docstring); values are Python literals
    (``10``, ``0.5``, ``True``, ``'x'``) or else plain strings."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty spec {text!r}: expected a name such as 'vp' or 'module:attribute'")
    parts = text.strip().split(":")
    first_param = next((i for i, part in enumerate(parts) if "=" in part), len(parts))
    target = ":".join(parts[:first_param])
    if not target:
        raise SpecError(f"spec {text!r} has parameters but no name before them")
    params = {}
    for part in parts[first_param:]:
        key, equals, value = part.partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            raise SpecError(f"spec {text!r}: {part!r} is not a key=value parameter")
        if key in params:
            raise SpecError(f"spec {text!r} sets {key!r} twice")
        params[key] = _literal(value.strip())
    return Spec(target, params)


def split_specs(text: str) -> list[str]:
    """Comma-separated specs, in order, blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def import_object(target: str):
    """``module:attribute`` (or ``path/to/file.py:attribute``) → the object. The current
    directory is importable, as for ``python -m``."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SpecError(f"{target!r} is not of the form module:attribute")
    module = import_module(module_name)
    obj = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return obj


def import_module(name: str):
    """Import a module by dotted name or by the path of a ``.py`` file (for ``--plugin``)."""
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise SpecError(f"plugin file {name!r} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise SpecError(f"cannot import module {name!r}: {error}") from None


_plugins_loaded = False


def load_plugins() -> None:
    """Import every module named by an entry point of :data:`PLUGIN_GROUP` (once). A plugin that
    fails to import is reported by a warning that names it; the others still load."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry_point.load()
        except Exception as error:  # a broken third-party plugin must not break the suite
            warnings.warn(f"sdebench plugin {entry_point.name!r} ({entry_point.value}) failed to "
                          f"load: {type(error).__name__}: {error}", stacklevel=2)


class Registry:
    """Name → factory (a class or function called with the spec's parameters).

    ``kind`` names the catalogue in error messages ("sampler", "schedule", …).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable] = {}

    def register(self, name: str | None = None, factory: Callable | None = None, *,
                 replace: bool = False):
        """Register ``factory`` under ``name`` (default: its ``__name__``). Use directly,
        ``registry.register("x", f)``, or as a decorator, ``@registry.register("x")``."""
        if callable(name) and factory is None:  # bare decorator: @register
            return self.register(None, name, replace=replace)

        def add(factory: Callable) -> Callable:
            key = name or getattr(factory, "__name__", None)
            if not isinstance(key, str) or not key or ":" in key or "," in key or "=" in key:
                raise SpecError(f"invalid {self.kind} name {key!r}: use a non-empty name without "
                                "':', ',' or '='")
            if not callable(factory):
                raise SpecError(f"{self.kind} {key!r}: expected a class or function, got "
                                f"{type(factory).__name__}")
            if key in self._factories and not replace and self._factories[key] is not factory:
                raise SpecError(f"a {self.kind} named {key!r} is already registered "
                                "(pass replace=True to override it)")
            self._factories[key] = factory
            return factory

        return add if factory is None else add(factory)

    def names(self) -> list[str]:
        load_plugins()
        return list(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def factory(self, target: str) -> Callable:
        """The factory of a registered name, or the object a ``module:attribute`` names."""
        load_plugins()
        if target in self._factories:
            return self._factories[target]
        if ":" in target:
            return import_object(target)
        raise SpecError(f"unknown {self.kind} {target!r}; expected one of {sorted(self._factories)}"
                        " or module:attribute")

    def create(self, spec: str | Spec, **context):
        """Call the factory of ``spec`` with its parameters (and ``context``, e.g. the schedule
        a problem is built on); a parameter the factory does not take is named in the error."""
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        factory = self.factory(spec.target)
        if not callable(factory):  # module:attribute naming a ready object
            if spec.params:
                raise SpecError(f"{self.kind} {spec.target!r} is an object, not a constructor: it "
                                f"takes no parameters, got {spec.params}")
            return factory
        check_parameters(factory, spec.params, f"{self.kind} {spec.target!r}")
        return factory(**context, **spec.params)

    def parameters(self, spec: str | Spec, **context) -> dict:
        """The full parameters ``create`` would use: the spec's, plus the factory's defaults."""
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        factory = self.factory(spec.target)
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            return dict(spec.params)
        bound = signature.bind_partial(**context, **spec.params)
        bound.apply_defaults()
        return {key: value for key, value in bound.arguments.items()
                if key not in context and key not in ("args", "kwargs")}


def check_parameters(factory: Callable, params: dict, what: str) -> None:
    """Raise :class:`SpecError` naming each parameter ``factory`` does not accept."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = [key for key in params if key not in accepted]
    if unknown:
        names = [n for n, p in accepted.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise SpecError(f"{what} takes no parameter {', '.join(map(repr, unknown))}; "
                        f"its parameters are {names}")
