"""Config files: dataclasses filled from YAML, with dotted command-line overrides.

Every config in hearflow is a plain dataclass whose fields have defaults. A YAML file
gives some of them; ``key.sub=value`` overrides from the command line give more. An
unknown key or a value of the wrong type is a :class:`~hearflow.errors.ConfigError`
naming the key and where it came from (file or command line), never a silent default.

A dataclass may define ``PRESETS: dict[str, Callable[[], instance]]``: then a YAML value
that is a string (``preprocess: htf_compat``) selects that preset.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from hearflow.errors import ConfigError

T = TypeVar("T")


def _type_name(tp) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(tp, value, key: str, source: str):
    """Return ``value`` checked (and minimally converted) against type ``tp``; :class:`_Mismatch` if it does not fit."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _coerce_dataclass(tp, value, key, source)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        return _coerce_union(tp, value, key, source)
    if origin in (list, tuple):
        return _coerce_sequence(tp, value, key, source)
    if tp is float:
        return _coerce_float(value)
    return _coerce_scalar(tp, value)


def _coerce_dataclass(tp, value, key: str, source: str):
    """A section: a mapping of its fields, an instance, or the name of one of its PRESETS."""
    if isinstance(value, str) and hasattr(tp, "PRESETS"):
        if value not in tp.PRESETS:
            raise ConfigError(
                f"{source}: '{key}' names unknown preset {value!r} "
                f"(presets: {', '.join(sorted(tp.PRESETS))})"
            )
        return tp.PRESETS[value]()
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise _Mismatch
    return _build(tp, value, source, prefix=key + ".")


def _coerce_union(tp, value, key: str, source: str):
    """The first member type (in declaration order) that accepts the value."""
    for arg in get_args(tp):
        try:
            return _coerce(arg, value, key, source)
        except _Mismatch:
            continue
    raise _Mismatch


def _coerce_sequence(tp, value, key: str, source: str):
    """``list[X]``, ``tuple[X, ...]`` (any length) or ``tuple[X, Y]`` (that length), from a YAML list."""
    origin = get_origin(tp)
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    args = [a for a in get_args(tp) if a is not Ellipsis]
    if origin is tuple and len(args) > 1 and len(args) != len(value):
        raise _Mismatch
    if origin is tuple and len(args) > 1:
        items = [_coerce(a, v, key, source) for a, v in zip(args, value)]
    else:
        items = [_coerce(args[0], v, key, source) if args else v for v in value]
    return tuple(items) if origin is tuple else items


def _coerce_float(value) -> float:
    """Ints promote to float; bools do not."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            raise _Mismatch from None
    raise _Mismatch


def _coerce_scalar(tp, value):
    """None, bool, int, str or any other class: the value as it is, if it is one (a bool is not an int)."""
    if tp is type(None):
        fits = value is None
    elif tp is bool:
        fits = isinstance(value, bool)
    elif tp is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif tp is str:
        fits = isinstance(value, str)
    else:
        fits = isinstance(tp, type) and isinstance(value, tp)
    if fits:
        return value
    raise _Mismatch


def _fields(cls) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _build(cls: type[T], data: dict, source: str, prefix: str = "") -> T:
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = prefix + str(key)
        if key not in fields:
            raise ConfigError(
                f"{source}: unknown key '{dotted}' (known keys under "
                f"'{prefix[:-1] or cls.__name__}': {', '.join(fields)})"
            )
        try:
            kwargs[key] = _coerce(fields[key], value, dotted, source)
        except _Mismatch:
            raise ConfigError(
                f"{source}: '{dotted}' must be {_type_name(fields[key])}, got {value!r}"
            ) from None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {prefix[:-1] or cls.__name__}: {exc}") from None
    return obj


def from_dict(cls: type[T], data: dict | None, source: str = "<dict>") -> T:
    """Build ``cls`` from a nested dict; unknown keys and wrong types raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    return _build(cls, data, source)


def to_dict(obj) -> dict:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def _parse_override_value(tp, raw: str):
    """Strings stay strings for str-typed fields; everything else goes through YAML."""
    origin = get_origin(tp)
    if tp is str or (origin is Literal and all(isinstance(a, str) for a in get_args(tp))):
        return raw
    if raw == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise _BadOverride(_yaml_problem(exc, single_line=True)) from None


class _BadOverride(Exception):
    """An override value that is not YAML; carries (line:column, problem)."""


def apply_overrides(obj: T, overrides: list[str] | tuple[str, ...], source: str = "command line") -> T:
    """Return a copy of ``obj`` with ``a.b.c=value`` overrides applied and type-checked."""
    data = to_dict(obj)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source}: override {item!r} is not of the form key.sub=value")
        dotted, raw = item.split("=", 1)
        dotted = dotted.strip()
        parts = dotted.split(".")
        cls = type(obj)
        node = data
        for i, part in enumerate(parts):
            if not dataclasses.is_dataclass(cls):
                raise ConfigError(f"{source}: unknown key '{dotted}' ('{'.'.join(parts[:i])}' is not a section)")
            fields = _fields(cls)
            if part not in fields:
                where = ".".join(parts[:i]) or cls.__name__
                raise ConfigError(
                    f"{source}: unknown key '{dotted}' (known keys under '{where}': {', '.join(fields)})"
                )
            if i == len(parts) - 1:
                try:
                    node[part] = _parse_override_value(fields[part], raw)
                except _BadOverride as exc:
                    where, problem = exc.args[0]
                    where = f" ({where} of the value)" if where else ""
                    raise ConfigError(f"{source}: override {item!r} is not valid YAML{where}: {problem}") from None
            else:
                cls = fields[part]
                # a preset string may stand where a section is expected
                if not isinstance(node.get(part), dict):
                    node[part] = to_dict(node[part]) if dataclasses.is_dataclass(node[part]) else node[part]
                node = node[part]
    return from_dict(type(obj), data, source)


def _yaml_problem(exc: yaml.YAMLError, single_line: bool = False) -> tuple[str, str]:
    """(place, what is wrong) of a PyYAML error: place is "line:column", 1-based as editors
    count, or "column N" for ``single_line`` text; "" when PyYAML gives no position.

    A scanner error noticed after the token it is in (an unclosed quote is noticed at the
    end of the file) is placed where that token began, since that is the line to fix.
    """
    def place(mark) -> str:
        return f"column {mark.column + 1}" if single_line else f"{mark.line + 1}:{mark.column + 1}"

    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return "", problem
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if (isinstance(exc, yaml.scanner.ScannerError) and context and cmark is not None
            and (cmark.line, cmark.column) != (mark.line, mark.column)):
        return place(cmark), f"{problem} {context} (noticed at {place(mark)})"
    return place(mark), problem


def _read_yaml(path: Path):
    """The YAML document in ``path``; ConfigError ``path:line:column: problem`` when it is not YAML."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[raw.rfind(b"\n", 0, exc.start) + 1:exc.start].decode("utf-8", "replace")) + 1
        raise ConfigError(f"{path}:{line}:{column}: not UTF-8 text "
                          f"(byte 0x{raw[exc.start]:02x} cannot be decoded; save the file as UTF-8)") from None
    try:
        return yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:  # a control character: PyYAML gives only its offset
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(f"{path}:{line}:{column}: character U+{exc.character:04X} is not allowed in YAML") from None
    except yaml.YAMLError as exc:
        where, problem = _yaml_problem(exc)
        raise ConfigError(f"{path}:{where}: {problem}" if where else f"{path}: not valid YAML ({problem})") from None


def load(cls: type[T], path: str | Path | None = None, overrides=()) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None), then apply overrides."""
    if path is None:
        obj = cls()
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        obj = from_dict(cls, _read_yaml(path), source=str(path))
    if overrides:
        obj = apply_overrides(obj, list(overrides))
    return obj


def save(obj, path: str | Path) -> Path:
    """Write ``obj`` as YAML; the file loads back to an equal object with :func:`load`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
    return path


def dumps(obj) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


__all__ = ["load", "save", "from_dict", "to_dict", "apply_overrides", "dumps"]
