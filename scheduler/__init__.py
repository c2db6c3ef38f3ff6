"""igsched: a self-hosted Instagram publishing daemon."""

__version__ = "0.1.0"
