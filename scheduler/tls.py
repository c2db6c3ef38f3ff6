"""One TLS context for every HTTP client of the process.

httpx builds a context per client unless given one, and reading the CA bundle costs about
25 ms, paid by each CLI command and each daemon start for every client made. The context is the one httpx would build (certifi, or
SSL_CERT_FILE / SSL_CERT_DIR as set when it is first used); a context may be shared by clients
and threads.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
