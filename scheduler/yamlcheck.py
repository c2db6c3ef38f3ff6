"""What the YAML loaders of queue files, message files and the configuration share: keys
written twice, found on the composed nodes, and a YAML error put in words that locate it
without quoting the file."""

from __future__ import annotations

import yaml

from scheduler.problems import shown
from scheduler.redaction import redact


def duplicate_keys(root: yaml.Node) -> list[tuple[str, int, int]]:
    """Keys written twice in one mapping (YAML keeps only the last, losing what was written
    first): (key, first line, line again), in the order of the second. Looked for on the
    composed nodes, before anything is built: building merges `<<` anchors into their
    mappings in place, which would then look like keys written twice. Each node is looked
    at once, so aliases repeated over and over cost nothing more."""
    found: list[tuple[str, int, int]] = []
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    line, ident = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
                    if ident in lines:
                        found.append((key_node.value, lines[ident], line))
                    lines.setdefault(ident, line)
                todo += [key_node, value_node]
        elif isinstance(node, yaml.SequenceNode):
            todo += node.value
    return sorted(found, key=lambda f: f[2])


def written_twice(key: str, first: int, again: int) -> str:
    """The problem for a key written twice (quoted short, and cut of any secret first)."""
    merge = " (merge several with <<: [*a, *b])" if key == "<<" else ""
    return (f"'{shown(redact(key) or '', 80)}' is written twice in the same place (lines {first} and {again}); "
            f"keep only one{merge}")


def yaml_error_text(e: yaml.YAMLError, text: str) -> str:
    """A YAML error in words: what and where, with a hint at the usual fix; never the
    parser's snippet of the file's text (the file may not be the one meant, or hold a
    secret on the broken line)."""
    if isinstance(e, yaml.reader.ReaderError) and isinstance(e.character, int):
        line = text.count("\n", 0, e.position) + 1
        return (
            f"the file contains a control character (#x{e.character:04x}) on line {line}, "
            "which YAML does not allow; remove it"
        )
    if not isinstance(e, yaml.MarkedYAMLError):
        return f"not valid YAML: {e}"
    mark = e.problem_mark or e.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = e.problem or "unreadable"
    context = f" ({e.context})" if e.context else ""
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = "; text containing ': ' must be put in quotes"
    elif "'\\t'" in problem:
        hint = "; indent with spaces, not tabs"
    return f"not valid YAML{where}: {problem}{context}{hint}"
