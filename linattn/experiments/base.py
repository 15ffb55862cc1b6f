"""What an experiment is: a validated config, its cells, and the function that runs one cell.

An :class:`Experiment` names the computation behind a table or figure of the book:

- ``config``: a frozen :class:`Config` dataclass, validated when built, with ``quick()`` (the
  2-core CPU scale the book executes) and ``paper()`` (the paper's scale) and overrides
  (``Config.quick(seeds=(0, 1))``, ``config.with_settings({"epochs": "50"})``);
- ``cells(config)``: the independent units of work (a task, model, width, seed, ...), each a
  JSON-able dict of *everything* its result depends on (the store keys a cell by it);
- ``run(params, device)``: computes one cell and returns named tables of tidy rows,
  ``{"rows": [{...}, ...], ...}``;
- ``data(config)``: the data files the cells need, checked before any work starts;
- ``work(params)``: a relative cost (for time estimates from measured per-cell costs).

The registry (:data:`REGISTRY`, :func:`register`, :func:`get`) lists every experiment.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

__all__ = ["Config", "Experiment", "REGISTRY", "register", "get", "names", "parse_value", "DTYPES", "dtype_field",
           "torch_dtype"]

#: The training precisions a config may name (its ``dtype`` field).
DTYPES = ("float32", "float64")


def dtype_field() -> Any:
    """The ``dtype`` field of a training config: "float32" (the default, the paper scale) or "float64".

    The quick scale trains in float64. Its few steps at a large learning rate amplify rounding:
    in float32, two CPUs whose BLAS kernels add in another order (AVX-512 against AVX2, say)
    reach numbers that differ in the printed digits (a distance by 10%, a flip count by two), so
    a chapter's checked output would hold on one machine only. In float64 the same amplification
    leaves the differences far below the printed precision. Left out of a cell's key at its
    default, so float32 cells stored before the field existed keep their keys."""
    return dataclasses.field(default="float32", metadata={"omit_default": True})


def torch_dtype(name):
    """The torch dtype of a config's ``dtype`` name ("float32" or "float64"); a torch dtype is returned as is."""
    import torch

    from .._validation import check_option

    if isinstance(name, torch.dtype):
        return name
    return {"float32": torch.float32, "float64": torch.float64}[check_option(name, "dtype", DTYPES)]


# --------------------------------------------------------------------------- configs


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a comma-separated list of {_describe(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "none"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Parse the command-line string ``text`` as a value of the annotated type ``tp``.

    Supports int, float, str, bool, ``X | None`` ("none") and ``tuple[X, ...]`` (comma-separated).
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null", ""):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return parse_value(text, a, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(f"{key}={text!r}: expected {_describe(tp)}")
    if origin is tuple:
        (inner, *_) = typing.get_args(tp)
        items = [t for t in text.split(",") if t.strip()]
        if not items:
            raise ValueError(f"{key}={text!r}: expected {_describe(tp)}, e.g. {key}=1,2,3")
        return tuple(parse_value(t.strip(), inner, key) for t in items)
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"{key}={text!r}: expected true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}={text!r}: expected an integer, e.g. {key}=3") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}={text!r}: expected a number, e.g. {key}=0.3") from None
    if tp is str:
        return text
    raise ValueError(f"{key}: cannot be set from the command line (type {tp})")  # pragma: no cover


_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "booleans (True or False)"}


def _kind_error(key: str, want: str, value: Any, example: str = "") -> TypeError:
    return TypeError(f"{key} must be {want}, got {value!r}{example}")


def _check_scalar(key: str, tp: Any, value: Any) -> None:
    """Refuse a value of the wrong kind for a field annotated int, float, str or bool (or X | None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return
        if len(args) == 1:
            _check_scalar(key, args[0], value)
        return
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise _kind_error(key, "an integer", value)
    elif tp is float:
        if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise _kind_error(key, "a number", value)
    elif tp is str:
        if not isinstance(value, str):
            raise _kind_error(key, "a string", value)
    elif tp is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise _kind_error(key, "True or False", value)


def _check_field_kinds(cfg: Any) -> None:
    """Check every field of a config against its annotation (tuples of names, ints, numbers, strings).

    A tuple field given a bare string, a number, or items of the wrong kind is a TypeError that
    says how to write it (``tasks=('mnist',)``); the values themselves are the config's to check.
    """
    try:
        hints = _hints(type(cfg))
    except Exception:  # pragma: no cover - unresolvable annotations: nothing to check against
        return
    for f in dataclasses.fields(cfg):
        tp = hints.get(f.name)
        value = getattr(cfg, f.name)
        if tp is None or dataclasses.is_dataclass(tp):
            continue
        if typing.get_origin(tp) is tuple:
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else Any
            what = _PLURAL.get(inner, "values")
            if inner is str:
                what = f"{f.name[:-1] if f.name.endswith('s') else f.name} names (strings)"
            if isinstance(value, (str, bytes)):
                raise TypeError(f"{f.name} must be a tuple of {what}, got the string "
                                f"{value!r}; write {f.name}=({value!r},)")
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{f.name} must be a tuple of {what}, got {value!r}; "
                                f"write {f.name}=({value!r},)")
            for item in value:
                try:
                    _check_scalar(f.name, inner, item)
                except TypeError:
                    raise TypeError(f"{f.name} must be a tuple of {what}, got {value!r} "
                                    f"(the item {item!r})") from None
        else:
            _check_scalar(f.name, tp, value)


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class Config:
    """Base class of experiment configs: frozen, validated in ``__post_init__``.

    A subclass lists its scales in ``SCALES = {"quick": {...}, "paper": {...}}`` (overrides of
    the field defaults) and validates its fields in ``__post_init__``. Nested dataclass fields
    (a :class:`linattn.train.TrainProtocol`) can be set by their inner names
    (``with_settings({"lr": "0.01"})``) when the name is not a field of the config itself.
    """

    SCALES: ClassVar[dict[str, dict]] = {"quick": {}, "paper": {}}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every config checks the *kinds* of its fields (by their annotations) before its own
        # __post_init__ looks at the values: a string where a tuple of names goes would otherwise
        # be iterated letter by letter (tasks="mnist" -> "unknown task 'm'").
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None or getattr(own, "_checks_field_kinds", False):
            return

        def __post_init__(self) -> None:
            _check_field_kinds(self)
            own(self)

        __post_init__._checks_field_kinds = True  # type: ignore[attr-defined]
        __post_init__.__doc__ = own.__doc__
        cls.__post_init__ = __post_init__

    def __post_init__(self) -> None:
        _check_field_kinds(self)

    @classmethod
    def at(cls, scale: str, **overrides: Any) -> "Config":
        """The config at ``scale`` ("quick" or "paper") with ``overrides`` applied."""
        if scale not in cls.SCALES:
            raise ValueError(f"scale must be one of {sorted(cls.SCALES)}, got {scale!r}")
        return cls().replace(**{**cls.SCALES[scale], **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> "Config":
        """The 2-core CPU scale that the book executes."""
        return cls.at("quick", **overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> "Config":
        """The paper's scale (or as close as the config's docstring says)."""
        return cls.at("paper", **overrides)

    def replace(self, **changes: Any) -> "Config":
        """A validated copy with ``changes`` (nested protocol fields allowed by name)."""
        own = {f.name for f in dataclasses.fields(self)}
        top = {k: v for k, v in changes.items() if k in own}
        nested: dict[str, dict] = {}
        for k, v in changes.items():
            if k in own:
                continue
            try:
                owner = self._nested_owner(k)
            except KeyError:
                raise ValueError(f"unknown key {k!r} for {type(self).__name__}; "
                                 f"keys: {', '.join(sorted(self.keys()))}") from None
            nested.setdefault(owner, {})[k] = v
        for owner, kv in nested.items():
            top[owner] = dataclasses.replace(top.get(owner, getattr(self, owner)), **kv)
        return dataclasses.replace(self, **top)

    def _nested_owner(self, key: str) -> str:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v) and key in {g.name for g in dataclasses.fields(v)}:
                return f.name
        raise KeyError(key)

    @classmethod
    def keys(cls) -> dict[str, Any]:
        """Every settable key and its type (nested protocol fields by their inner names)."""
        hints = typing.get_type_hints(cls)
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                inner = typing.get_type_hints(tp)
                for g in dataclasses.fields(tp):
                    out.setdefault(g.name, inner[g.name])
            else:
                out[f.name] = tp
        return out

    def with_settings(self, settings: dict[str, str]) -> "Config":
        """Apply ``--set key=value`` strings, parsed by each field's type, and validate."""
        keys = self.keys()
        parsed = {}
        for k, text in settings.items():
            if k not in keys:
                raise ValueError(f"unknown key {k!r} for {type(self).__name__}; keys: {', '.join(sorted(keys))}")
            parsed[k] = parse_value(text, keys[k], k)
        return self.replace(**parsed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def common_params(self, axes: tuple[str, ...] = ()) -> dict:
        """The fields every cell of this config shares: all but the ``axes`` (the fields the cells
        vary over), and leaving out fields still at a default marked
        ``field(metadata={"omit_default": True})``, so that a field added later with a default that
        keeps the old behaviour does not change the keys of cells stored before it existed."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in axes:
                continue
            value = getattr(self, f.name)
            if f.metadata.get("omit_default") and value == f.default:
                continue
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out

    @classmethod
    def from_params(cls, params: dict, **axes: Any) -> "Config":
        """The config a cell's ``params`` describe, with its axes fields given as ``axes``
        (lists back to tuples, nested dataclasses rebuilt, omitted fields at their defaults)."""
        hints = typing.get_type_hints(cls)
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in axes or f.name not in params:
                continue
            v = params[f.name]
            if dataclasses.is_dataclass(hints[f.name]) and isinstance(v, dict):
                v = hints[f.name](**v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[f.name] = v
        return cls(**kw, **axes)


# --------------------------------------------------------------------------- experiments


def _unit_work(params: dict) -> float:
    return 1.0


def _no_data(config: Any) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class Experiment:
    """One experiment of the book (see the module docstring).

    ``version`` is part of every cell's key: bump it when ``run`` changes what it computes,
    so that stored cells of the old code are not mistaken for the new.
    """

    name: str
    title: str
    chapter: str
    config: type
    cells: Callable[[Any], list[dict]]
    run: Callable[[dict, str], dict[str, list[dict]]]
    data: Callable[[Any], list[tuple[str, str]]] = _no_data
    work: Callable[[dict], float] = _unit_work
    version: int = 1

    def configure(self, scale: str = "quick", settings: dict[str, str] | None = None, **overrides: Any):
        """The config at ``scale`` with ``overrides`` and then ``settings`` (strings) applied."""
        cfg = self.config.at(scale, **overrides)
        return cfg.with_settings(settings) if settings else cfg


REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    """Add ``exp`` to the registry (names are unique)."""
    if exp.name in REGISTRY and REGISTRY[exp.name] is not exp:
        raise ValueError(f"an experiment named {exp.name!r} is already registered")
    REGISTRY[exp.name] = exp
    return exp


def names() -> list[str]:
    """The registered experiments, in book order."""
    return list(REGISTRY)


def get(name: str) -> Experiment:
    """The experiment called ``name``; a clear error listing the names otherwise."""
    if name not in REGISTRY:
        raise KeyError(f"unknown experiment {name!r}; choose from: {', '.join(REGISTRY)} "
                       f"(`linattn reproduce --list`)")
    return REGISTRY[name]
