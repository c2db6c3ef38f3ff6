"""Groups of CLI commands, one module each, registered on `igsched` in scheduler/cli.py."""
