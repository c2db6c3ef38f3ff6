"""Queue-file bytes → one YAML document, safely (README "Queue files").

Reading refuses folders, non-regular files, oversized and non-UTF-8 files (and, for the
inbox, symbolic links); loading is yaml.safe_load's, plus a note of keys written twice,
scalar constructors that never raise (a value they cannot build stays text, for the field
check to report), a size/depth guard against alias bombs, and YAML errors put in words with
a hint at the usual fix. Every problem here concerns the whole file.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from scheduler.problems import InvalidInput, Problem
from scheduler.yamlcheck import duplicate_keys, written_twice, yaml_error_text

# Aliases are shared objects after loading, so a billion-laughs file is small in memory but
# huge to walk; counting every visit (not every object) bounds the work done on it.
MAX_VALUES = 1_000_000
MAX_DEPTH = 50
_TOO_DEEP = f"the file is nested too deeply (more than {MAX_DEPTH} levels)"


def _too_big(size: str, limit: int) -> str:
    return f"the file is {size} bytes; the limit is {limit:,} bytes (queue.max_file_bytes)"


def read_queue_text(path: Path, limit: int, *, follow_symlinks: bool = True) -> str:
    """The file's text; InvalidInput (one file-level problem) if it cannot be used.

    The checks are made on the opened descriptor, so the file cannot be swapped between
    them and the read. With follow_symlinks=False (the inbox) a symbolic link is refused
    without being read."""

    def fail(message: str) -> InvalidInput:
        return InvalidInput([Problem(str(path), message)])

    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: a FIFO must not hang us; fstat refuses it
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise fail("is a symbolic link; only regular files are read") from None
        if e.errno == errno.EISDIR:
            raise fail("is a folder, not a queue file") from None
        raise fail(f"cannot read the file: {e.strerror}") from None
    try:
        data = _read_regular(fd, limit, fail)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(
            f"the file is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
            "save it with UTF-8 encoding"
        ) from None


def _read_regular(fd: int, limit: int, fail: Callable[[str], InvalidInput]) -> bytes:
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise fail("is a folder, not a queue file")
        if not stat.S_ISREG(st.st_mode):
            raise fail("is not a regular file")
        if st.st_size > limit:
            raise fail(_too_big(f"{st.st_size:,}", limit))
        chunks, left = [], limit + 1  # never more, even if the file grew since fstat()
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        raise fail(f"cannot read the file: {e.strerror}") from None
    if len(data) > limit:
        raise fail(_too_big(f"more than {limit:,}", limit))
    return data


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader (keys written twice are looked for on the composed nodes
    first: yamlcheck.duplicate_keys).

    Its scalar constructors never raise: a timestamp that is not a real time (February 30,
    second 60, offset +25:00), or an !!int/!!float/!!bool/!!timestamp tag on text that is
    not one, stays the text as written, so the field check that reads it names the post and
    the field instead of the whole file failing with a traceback."""

def _lenient(
    construct: Callable[[yaml.SafeLoader, yaml.ScalarNode], Any],
) -> Callable[[yaml.SafeLoader, yaml.Node], Any]:
    """A scalar constructor that gives back the text as written instead of raising."""

    def build(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):  # e.g. !!int on a list: a located YAML error
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.tag.replace('tag:yaml.org,2002:', '!!')} must tag a single value",
                node.start_mark,
            )
        try:
            value = construct(loader, node)
            if isinstance(value, datetime) and value.tzinfo is not None:
                value.astimezone(UTC)  # year 9999 at -01:00 overflows here, not later
            return value
        except (ValueError, OverflowError, TypeError, AttributeError, KeyError, IndexError):
            return str(node.value)

    return build


for _tag, _construct in (
    ("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_timestamp),
    ("tag:yaml.org,2002:int", yaml.SafeLoader.construct_yaml_int),
    ("tag:yaml.org,2002:float", yaml.SafeLoader.construct_yaml_float),
    ("tag:yaml.org,2002:bool", yaml.SafeLoader.construct_yaml_bool),
):
    _Loader.add_constructor(_tag, _lenient(_construct))


def load_queue_yaml(text: str, limit: int) -> tuple[bool, Any, list[str]]:
    """(usable, document, file-level problems). Keys written twice are problems that still
    leave the document usable; anything else found here makes it unusable."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        return False, None, [_too_big(f"{size:,}", limit)]
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader checks every character here already
        node = loader.get_single_node()
        duplicates = duplicate_keys(node) if node is not None else []
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        return False, None, [yaml_error_text(e, text)]
    except RecursionError:
        return False, None, [_TOO_DEEP]
    except (ValueError, TypeError, OverflowError) as e:  # a constructor PyYAML did not guard
        return False, None, [f"not valid YAML: a value cannot be read ({type(e).__name__})"]
    finally:
        if loader is not None:
            loader.dispose()
    problems = [written_twice(key, first, again) for key, first, again in duplicates]
    size_problem = _size_problem(doc)
    if size_problem:
        return False, None, [*problems, size_problem]
    return True, doc, problems


def _size_problem(doc: Any) -> str | None:
    visited = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            return (
                f"the file expands to more than {MAX_VALUES:,} values "
                "(YAML aliases repeated over and over?); it is refused"
            )
        if depth > MAX_DEPTH:
            return _TOO_DEEP
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None
