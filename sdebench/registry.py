"""Named catalogues that users extend: samplers, schedules, problems and metrics.

A *spec* names an entry and, optionally, its parameters::

    vp                              a registered name
    vp:beta_max=10:beta_min=0.2     … with parameters (values read as Python literals;
                                    nan and inf as floats)
    mypkg.schedules:rectified_flow  an object imported from a module (``module:attribute``)
    mypkg.samplers:MySolver:eta=0.5 … with parameters

Entries come from three places, in this order: the built-in catalogues, ``register``
(a decorator) in user code, and installed plugins: modules named by entry points of the group
``sdebench.plugins`` (``[project.entry-points."sdebench.plugins"] mine = "mypkg.plugin"``),
imported the first time a catalogue is consulted; importing them registers their entries.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import numbers
import os
import sys
import traceback
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


_NON_FINITE = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _literal(text: str):
    if text.lower() in _NON_FINITE:  # not Python literals, but numbers a user means
        return float(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def did_you_mean(name: str, choices) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices`` to a mistyped ``name`` (difflib's
    ratio ≥ 0.6), else ""."""
    close = difflib.get_close_matches(str(name), [str(choice) for choice in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
            hint = did_you_mean(part, [name for name in dir(obj) if not name.startswith("_")])
            raise SpecError(f"module {module_name!r} has no attribute {attribute!r}{hint}") from None
    return obj


def _import_failure(name: str, error: BaseException) -> SpecError:
    """One line for user code that fails while it is imported: the file and line, the error."""
    if isinstance(error, SyntaxError):
        where = f"{error.filename}, line {error.lineno}"
        return SpecError(f"cannot import {name!r}: syntax error in {where}: {error.msg} (fix the "
                         "file, or leave out the --plugin/spec that names it)")
    frames = traceback.extract_tb(error.__traceback__)
    frame = frames[-1] if frames else None
    where = f" at {frame.filename}, line {frame.lineno}" if frame else ""
    return SpecError(f"cannot import {name!r}: it raised {type(error).__name__}{where}: {error} "
                     "(fix the module, or leave out the --plugin/spec that names it)")


def import_module(name: str):
    """Import a module by dotted name or by the path of a ``.py`` file (for ``--plugin``)."""
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise SpecError(f"plugin file {name!r} does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # the user's file: say where it broke, in one line
            del sys.modules[path.stem]
            raise _import_failure(name, error) from error
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise SpecError(f"cannot import module {name!r}: {error}") from None
    except Exception as error:  # the user's module: say where it broke, in one line
        raise _import_failure(name, error) from error


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
            try:
                return import_object(target)
            except SpecError:
                name, _, rest = target.partition(":")
                if name not in self._factories:
                    raise
            # e.g. "vp:beta_max": a registered name and a parameter without its value
            raise SpecError(f"{self.kind} spec {target!r}: {rest!r} is not a key=value parameter "
                            f"(e.g. {name}:{rest.split(':')[0]}=...)")
        raise SpecError(f"unknown {self.kind} {target!r}{did_you_mean(target, self._factories)}; "
                        f"expected one of {sorted(self._factories)} or module:attribute")

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
        check_parameters(factory, spec.params, f"{self.kind} {spec.target!r}", context)
        try:
            return factory(**context, **spec.params)
        except (ValueError, ArithmeticError) as error:  # a bad value: say which spec it came from
            _name_spec(error, f"{self.kind} {spec.target!r}", f"{self.kind} {str(spec)!r}")
            raise

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


def _name_spec(error: Exception, short: str, full: str) -> None:
    """Make ``error``'s message name the full spec (``sampler 'pc:snr=0'``), in place, so its type
    and traceback stay those of the factory's error."""
    message = str(error)
    if full in message:
        return
    message = full + message[len(short):] if message.startswith(short) else f"{full}: {message}"
    error.args = (message, *error.args[1:])


_KINDS = {"float": "a number", "int": "an integer", "bool": "True or False", "str": "a string"}
_LITERALS = (str, bytes, bool, complex, list, tuple, dict, set, type(None))
"""The types a spec value can have that are not numbers (:func:`_literal`)."""


def _expected_kinds(parameter: inspect.Parameter) -> set[str] | None:
    """What a value of ``parameter`` may be, from its annotation (``float``, ``int | None``, …) or
    else its default (a number, a string, True/False); None when it says nothing we can check.
    "None" is in the set when None is allowed."""
    annotation = parameter.annotation
    if annotation is not parameter.empty:
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        tokens = {token.strip() for token in text.split("|")}
        return tokens if tokens <= {*_KINDS, "None"} else None
    default = parameter.default
    if isinstance(default, bool):
        return {"bool"}
    if isinstance(default, numbers.Real):  # an unannotated 20 still takes 20.5
        return {"float"}
    if isinstance(default, str):
        return {"str"}
    return None


def _fits(value, kind: str) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool" or kind == "str":
        return isinstance(value, bool if kind == "bool" else str)
    if isinstance(value, _LITERALS):
        return False
    if isinstance(value, int | float):
        return kind == "float" or float(value).is_integer()
    return True  # numpy, SymPy, torch numbers: the factory decides


def check_parameters(factory: Callable, params: dict, what: str, context=()) -> None:
    """Raise :class:`SpecError` naming each parameter ``factory`` does not accept (with the
    closest accepted name), and each value of the wrong type: a string where a number is
    expected (``ddim:eta=abc``), True for a number, 0.5 for an integer, as the parameter's
    annotation or default says. Names in ``context`` (passed by the caller, not the spec) are
    not offered as parameters."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        unknown = [key for key in params if key not in accepted]
        if unknown:
            names = [n for n, p in accepted.items() if n not in context
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            raise SpecError(f"{what} takes no parameter {', '.join(map(repr, unknown))}"
                            f"{did_you_mean(unknown[0], names)}; "
                            + (f"its parameters are {names}" if names else "it takes none"))
    for key, value in params.items():
        if key in context:
            raise SpecError(f"{what}: {key} is set by the study (its own option, e.g. --{key}), "
                            "not by a spec parameter")
        kinds = _expected_kinds(accepted[key]) if key in accepted else None
        if kinds and not any(_fits(value, kind) for kind in kinds):
            expected = " or ".join(_KINDS.get(kind, kind) for kind in sorted(kinds, key=str.lower))
            raise SpecError(f"{what}: {key} must be {expected}, got {value!r}")


def check_number(name: str, value, *, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False, integer: bool = False):
    """``value`` (as an int when ``integer``) if it is a finite real number in the interval from
    ``low`` to ``high`` (closed ends unless ``low_open``/``high_open``); else a ValueError that
    names ``name``, the value and the interval, e.g. "s_churn must be a finite number >= 0, got
    -5". NaN fails every comparison, so it is refused with the rest."""
    kind = "an integer" if integer else "a finite number"
    low, high = float(low), float(high)
    if math.isinf(low) and math.isinf(high):
        interval = ""
    elif math.isinf(high):
        interval = f" {'>' if low_open else '>='} {low:g}"
    elif math.isinf(low):
        interval = f" {'<' if high_open else '<='} {high:g}"
    else:
        interval = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    try:  # SymPy's exact numbers (a schedule's parameters) compare as their floats
        number = None if isinstance(value, str | bytes | bool) else float(value)
    except (TypeError, ValueError):
        number = None
    inside = number is not None and math.isfinite(number) and (
        low < number if low_open else low <= number) and (
        number < high if high_open else number <= high) and (not integer or number.is_integer())
    if not inside:
        raise ValueError(f"{name} must be {kind}{interval}, got {value!r}")
    return int(value) if integer else value
