"""Compile Azure Functions route templates (``items/{id:int?}``) and match request paths."""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["Param", "RouteTemplate", "RouteSyntaxError", "split_path"]

# Characters left unescaped when building URLs (RFC 3986 pchar minus "/").
_SAFE = "!$&'()*+,;=:@~"


class RouteSyntaxError(ValueError):
    """A route template could not be parsed."""


@dataclass(frozen=True)
class Param:
    """One ``{...}`` route parameter: name, constraints, optional/default, catch-all."""

    name: str
    constraints: tuple[str, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False


@dataclass(frozen=True)
class _Segment:
    parts: tuple[str | Param, ...]
    regex: re.Pattern[str] | None  # None for purely literal segments
    groups: tuple[tuple[str, Param], ...]

    @property
    def literal(self) -> str | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def sole_param(self) -> Param | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], Param):
            return self.parts[0]
        return None

    @property
    def precedence(self) -> int:
        # Mirrors ASP.NET routing: literals beat complex segments beat
        # constrained parameters beat plain parameters beat catch-alls.
        if self.literal is not None:
            return 1
        param = self.sole_param
        if param is None:
            return 2
        if param.catch_all:
            return 5 if param.constraints else 6
        return 3 if param.constraints else 4


def split_path(raw_path: str) -> list[str]:
    """Split a percent-encoded URL path into decoded segments (one trailing slash ignored)."""
    path = raw_path.lstrip("/")
    if not path:
        return []
    segments = path.split("/")
    if segments[-1] == "":
        segments.pop()
    return [unquote(s, errors="replace") for s in segments]


def _split_outside_parens(text: str, sep: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


def _parse_param(body: str, template: str) -> Param:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    pieces = _split_outside_parens(body, "=")
    if len(pieces) > 1:
        body, default = pieces[0], "=".join(pieces[1:])
    optional = False
    if body.endswith("?"):
        optional, body = True, body[:-1]
    name, *constraints = _split_outside_parens(body, ":")
    if not name:
        raise RouteSyntaxError(f"empty parameter name in route {template!r}")
    return Param(name, tuple(c for c in constraints if c), optional, default, catch_all)


def _parse_segment(text: str, template: str) -> tuple[str | Param, ...]:
    parts: list[str | Param] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(ch)
            i += 2
            continue
        if ch == "{":
            depth, j = 0, i + 1
            while j < len(text) and not (text[j] == "}" and depth == 0):
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            if j >= len(text):
                raise RouteSyntaxError(f"unclosed '{{' in route {template!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_parse_param(text[i + 1 : j], template))
            i = j + 1
            continue
        if ch == "}":
            raise RouteSyntaxError(f"unmatched '}}' in route {template!r}")
        literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _compile_segment(parts: tuple[str | Param, ...]) -> _Segment:
    if len(parts) == 1 and isinstance(parts[0], str):
        return _Segment(parts, None, ())
    pattern: list[str] = []
    groups: list[tuple[str, Param]] = []
    sole = len(parts) == 1
    for part in parts:
        if isinstance(part, str):
            pattern.append(re.escape(part))
            continue
        group = f"g{len(groups)}"
        groups.append((group, part))
        body = ".+" if sole else ".+?"
        pattern.append(f"(?P<{group}>{body})" + ("?" if part.optional and not sole else ""))
    regex = re.compile("".join(pattern), re.IGNORECASE | re.DOTALL)
    return _Segment(parts, regex, tuple(groups))


def _int_in(value: str, lo: int, hi: int) -> bool:
    if not re.fullmatch(r"[+-]?\d+", value):
        return False
    return lo <= int(value) <= hi


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in {"nan", "inf", "-inf", "+inf", "infinity"}


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        _dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _int_in(v, -(2**31), 2**31 - 1),
    "long": lambda v: _int_in(v, -(2**63), 2**63 - 1),
    "bool": lambda v: v.lower() in {"true", "false"},
    "alpha": lambda v: v.isascii() and v.isalpha(),
    "guid": _is_guid,
    "float": _is_float,
    "double": _is_float,
    "decimal": _is_float,
    "datetime": _is_datetime,
    "required": bool,
}


def _constraint_ok(constraint: str, value: str) -> bool:
    """Check one ASP.NET-style route constraint; unknown constraints are ignored."""
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?", constraint, re.DOTALL)
    if not match:
        return True
    kind, arg = match.group(1).lower(), match.group(2)
    if arg is None:
        check = _SIMPLE.get(kind)
        return check(value) if check else True
    if kind == "regex":
        return re.search(arg, value, re.IGNORECASE) is not None
    try:
        nums = [int(a) for a in arg.split(",")]
    except ValueError:
        return True
    if kind in {"min", "max", "range"}:
        if not _int_in(value, -(2**63), 2**63 - 1):
            return False
        n = int(value)
        if kind == "min":
            return n >= nums[0]
        if kind == "max":
            return n <= nums[0]
        return len(nums) == 2 and nums[0] <= n <= nums[1]
    if kind == "length":
        return len(value) == nums[0] if len(nums) == 1 else nums[0] <= len(value) <= nums[1]
    if kind == "minlength":
        return len(value) >= nums[0]
    if kind == "maxlength":
        return len(value) <= nums[0]
    return True


def _param_ok(param: Param, value: str) -> bool:
    return all(_constraint_ok(c, value) for c in param.constraints)


class RouteTemplate:
    """A parsed route template (route prefix included) that matches decoded path segments."""

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        raw_segments = self.template.split("/") if self.template else []
        self.segments: tuple[_Segment, ...] = tuple(
            _compile_segment(_parse_segment(s, template)) for s in raw_segments
        )
        if any(not seg.parts for seg in self.segments):
            raise RouteSyntaxError(f"empty segment in route {template!r}")
        self.precedence: tuple[int, ...] = tuple(s.precedence for s in self.segments)
        self.params: tuple[Param, ...] = tuple(
            p for seg in self.segments for p in seg.parts if isinstance(p, Param)
        )

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        """Return the route params if ``segments`` match this template, else None."""
        values: dict[str, str] = {}
        for index, tseg in enumerate(self.segments):
            sole = tseg.sole_param
            if sole is not None and sole.catch_all:
                rest = "/".join(segments[index:])
                value = rest or sole.default
                if value is not None:
                    if not _param_ok(sole, value):
                        return None
                    values[sole.name] = value
                return values
            if index >= len(segments):
                if sole is not None and (sole.optional or sole.default is not None):
                    if sole.default is not None:
                        values[sole.name] = sole.default
                    continue
                return None
            segment = segments[index]
            literal = tseg.literal
            if literal is not None:
                if segment.casefold() != literal.casefold():
                    return None
                continue
            assert tseg.regex is not None
            found = tseg.regex.fullmatch(segment)
            if found is None:
                return None
            for group, param in tseg.groups:
                value = found.group(group)
                if not value:
                    if param.default is not None:
                        values[param.name] = param.default
                    continue
                if not _param_ok(param, value):
                    return None
                values[param.name] = value
        if len(segments) > len(self.segments):
            return None
        return values

    def build(self, values: Mapping[str, object]) -> str:
        """Fill the template with ``values`` and return a percent-encoded path ("/a/b")."""
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise ValueError(f"unknown route parameter(s) {sorted(unknown)} for {self.template!r}")
        out: list[str] = []
        for tseg in self.segments:
            text: list[str] = []
            skipped = False
            for part in tseg.parts:
                if isinstance(part, str):
                    text.append(quote(part, safe=_SAFE))
                    continue
                value = values.get(part.name, part.default)
                if value is None:
                    if part.optional or part.catch_all:
                        skipped = True
                        continue
                    raise ValueError(f"missing route parameter {part.name!r} for {self.template!r}")
                safe = _SAFE + "/" if part.catch_all else _SAFE
                text.append(quote(str(value), safe=safe))
            if skipped and tseg.sole_param is not None:
                continue
            out.append("".join(text))
        return "/" + "/".join(out)
