"""Running for months: stored-token encryption, token refresh decisions, notifications, metrics."""
