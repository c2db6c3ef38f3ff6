"""The `fields=` parameter: parsing `a,b{c,d}` and picking fields from a node."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import GraphError

# A parsed selection: field names, each with its nested selection (or None).
Selection = list[tuple[str, "Selection | None"]]
# A node's fields: plain values, or functions of the nested selection (edges, sub-objects).
Resolver = Callable[["Selection | None"], Any]


def parse_fields(spec: str | None) -> Selection | None:
    """`"id,children{id,media_url}"` → [("id", None), ("children", [("id", None), ...])]."""
    if spec is None or not spec.strip():
        return None
    selection, rest = _parse(spec, 0)
    if rest != len(spec):
        raise GraphError(100, f"(#100) Syntax error in fields: {spec!r}")
    return selection


def _parse(spec: str, i: int) -> tuple[Selection, int]:
    out: Selection = []
    name = ""
    while i < len(spec):
        ch = spec[i]
        if ch == ",":
            if name.strip():
                out.append((_clean(name), None))
            name = ""
            i += 1
        elif ch == "{":
            sub, i = _parse(spec, i + 1)
            if i >= len(spec) or spec[i] != "}":
                raise GraphError(100, f"(#100) Syntax error in fields: {spec!r}")
            out.append((_clean(name), sub))
            name = ""
            i += 1
            if i < len(spec) and spec[i] == ",":
                i += 1
        elif ch == "}":
            break
        else:
            name += ch
            i += 1
    if name.strip():
        out.append((_clean(name), None))
    return out, i


def _clean(name: str) -> str:
    # Modifiers such as `children.limit(5)` are accepted and ignored.
    return name.strip().split(".", 1)[0]


def select(
    node_type: str,
    available: Mapping[str, Any],
    selection: Selection | None,
    default: tuple[str, ...] = ("id",),
) -> dict[str, Any]:
    """Build a node's JSON: `id` first (Graph always returns it), then the asked fields.

    Unknown fields are an error, as in Graph; fields whose value is None are left out.
    """
    wanted: Selection = selection if selection is not None else [(f, None) for f in default]
    out: dict[str, Any] = {}
    if "id" in available:
        out["id"] = available["id"]
    for name, sub in wanted:
        if name not in available:
            raise GraphError(
                100,
                f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})",
            )
        value = available[name]
        if callable(value):
            value = value(sub)
        if value is not None:
            out[name] = value
    return out
