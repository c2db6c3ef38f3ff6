"""Endpoint names (templates without ids) shared by the Graph client and the readers of the
call history: the client tags each call with one, and the store counts calls by it (e.g. the
container budget counts CREATE_CONTAINER). No imports: the store may use it too."""

from __future__ import annotations

CREATE_CONTAINER = "POST /{ig-user-id}/media"  # also a resumable upload's container
TOKEN_CHECK = "GET /me"  # the one call an account whose token Meta refused still gets
