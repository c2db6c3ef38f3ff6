"""The Graph API seam: an async client, the error taxonomy and usage-header parsing."""

from scheduler.graph.client import (
    CallContext,
    CallRecord,
    ContainerStatus,
    GraphClient,
    PublishingLimit,
    call_context,
    current_call_context,
)
from scheduler.graph.container_errors import ContainerError, classify_container_error
from scheduler.graph.errors import (
    ErrorClass,
    GraphError,
    GraphUnavailable,
    UploadError,
    classify,
    redact,
)
from scheduler.graph.usage import Usage, UsageFigures, parse_usage

__all__ = [
    "CallContext",
    "CallRecord",
    "ContainerError",
    "ContainerStatus",
    "ErrorClass",
    "GraphClient",
    "GraphError",
    "GraphUnavailable",
    "PublishingLimit",
    "UploadError",
    "Usage",
    "UsageFigures",
    "call_context",
    "classify",
    "classify_container_error",
    "current_call_context",
    "parse_usage",
    "redact",
]
