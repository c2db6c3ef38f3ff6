"""Message files (README "Engagement"): one message in YAML, read like a queue file (the same
size cap and the same loader that cannot be tricked), validated by `engage.messages`."""

from __future__ import annotations

from pathlib import Path

from scheduler.engage.messages import TOP_KEYS, OutboundMessage, parse_message
from scheduler.problems import InvalidInput, Problem, foreign_keys
from scheduler.queuefile.yamlload import load_queue_yaml, read_queue_text


def load_message_file(path: Path, limit: int, *, to: str | None = None) -> OutboundMessage:
    """A message file (YAML, one message); InvalidInput naming the file and each field.

    `limit` is the size cap in bytes: pass `settings.queue.max_file_bytes`, the setting the
    size problem names (message files are read like queue files). `to` (e.g. `--to`) fills
    in a file without a recipient; a file that names another one is refused."""
    text = read_queue_text(path, limit)
    usable, doc, file_problems = load_queue_yaml(text, limit)
    problems = [Problem(str(path), p) for p in file_problems]
    if not usable:
        raise InvalidInput(problems)
    if isinstance(doc, dict) and (foreign := foreign_keys(doc, TOP_KEYS)) is not None:
        raise InvalidInput([*problems, Problem(str(path), foreign)])  # before --to joins its keys
    if to is not None and isinstance(doc, dict):
        if "to" not in doc and "comment" not in doc:
            doc = {**doc, "to": to}
        elif "comment" in doc:
            problems.append(Problem(str(path), "the file is a private reply (comment:); --to does not apply",
                                    field="comment"))
        elif str(doc["to"]) != to:
            problems.append(Problem(str(path), f"the file sends to {str(doc['to'])!r} but --to says {to!r}",
                                    field="to"))
    try:
        message = parse_message(doc, source=str(path))
    except InvalidInput as e:
        raise InvalidInput(problems + e.problems) from None
    if problems:  # keys written twice: the file does not say one thing
        raise InvalidInput(problems)
    return message


__all__ = ["load_message_file"]
