"""Queue files: YAML → validated post specs (README "Queue files").

The one public face of the package: `load_queue_file` reads a file, `parse_queue_text` parses
text already read. Inside: `yamlload` (reading and a YAML loader that cannot be tricked),
`fields` (one field at a time), `messages` (planned messages beside the posts), `media` (media sources), `kinds` (the rules of each post
kind), `times` (times and timezones) and `files` (a whole document, all or nothing).
"""

from scheduler.queuefile.files import (
    QueueDocument,
    load_queue_document,
    load_queue_file,
    parse_queue_document,
    parse_queue_text,
)
from scheduler.queuefile.messages import MessageSpec

__all__ = ["MessageSpec", "QueueDocument", "load_queue_document", "load_queue_file", "parse_queue_document",
           "parse_queue_text"]
