"""A peer sampler's options typed against the library's own signature.

A spec's values arrive as Python literals or, failing that, as strings (:func:`sdebench.registry.
parse_spec`): ``lower_order_final=False`` is the bool False, but ``lower_order_final=false`` is the
string 'false', which is truthy, so a scheduler would run with the opposite of what was asked and
record it. :func:`typed_options` reads each option's type from the function's signature — its
annotation (diffusers: ``bool``, ``int``, ``float``, ``str``, ``Literal[…]``, ``list[float]``,
unions with None) or, where there is none, its default's type (k-diffusion: ``eta=1.``,
``order=4``) — and converts the value to it, or refuses it naming the values it accepts:

* bool: True/False, 1/0, or the strings true/false/1/0 in any case;
* int: an integer, or a string of one; float: a number, or a string that ``float`` reads
  (``inf``); str: a string; ``Literal[a, b]``: one of a, b;
* lists (``list[float]``, ``numpy.ndarray``): a list or tuple, each element typed;
* ``X | None``: None (or the string none, in any case) or an X.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping

from sdebench.registry import SpecError

_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


class _Refused(ValueError):
    """A value that does not have the annotation's type; the message says what it accepts."""


def _describe(annotation) -> str:
    """What an annotation accepts, in words."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return f"one of {list(arguments)}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(argument) for argument in arguments)
    if annotation is type(None):
        return "None"
    if origin in (list, tuple) or getattr(annotation, "__name__", "") == "ndarray":
        return f"a list of {_describe(arguments[0]) if arguments else 'values'}"
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(annotation, f"a {getattr(annotation, '__name__', annotation)} "
                                 "(which a spec cannot give)")


def coerce(value, annotation):
    """``value`` as the type ``annotation`` names (module docstring); :class:`_Refused` if it
    has none of the accepted forms."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for argument in sorted(arguments, key=lambda a: a is not type(None)):  # None first
            try:
                return coerce(value, argument)
            except _Refused:
                continue
    elif origin is typing.Literal:
        if value in arguments:
            return value
    elif annotation is type(None):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
    elif annotation is bool:
        text = str(value).lower() if isinstance(value, (str, bool, int)) else ""
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple) or getattr(annotation, "__name__", "") == "ndarray":
        if isinstance(value, (list, tuple)):
            element = arguments[0] if arguments else None
            return [value_ if element is None else coerce(value_, element) for value_ in value]
    raise _Refused(_describe(annotation))


def annotation_of(parameter: inspect.Parameter):
    """The parameter's annotation, else its default's type, else None (anything goes)."""
    if parameter.annotation is not inspect.Parameter.empty:
        return parameter.annotation
    if parameter.default not in (inspect.Parameter.empty, None):
        return type(parameter.default)
    return None


def typed_options(options: dict, parameters: Mapping[str, inspect.Parameter], owner: str) -> dict:
    """``options`` converted to the types of ``parameters`` (a signature's, by name); an option
    that is not a parameter, or a value of another type, is refused with a :class:`SpecError`
    that names the accepted options or values (module docstring)."""
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise SpecError(f"{owner} takes no option {unknown}; its options are {sorted(parameters)}")
    typed = {}
    for name, value in options.items():
        annotation = annotation_of(parameters[name])
        try:
            typed[name] = value if annotation is None else coerce(value, annotation)
        except _Refused as refused:
            raise SpecError(f"{owner}: {name}={value!r} is not {refused}") from None
    return typed
