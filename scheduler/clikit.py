"""What every command shares: the context (settings, store), exit codes and one-line errors.

Commands live in `scheduler/cli.py` and, one module per group of commands, in
`scheduler/commands/`; each only parses, calls and prints (README "Command line").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from scheduler.config import Settings, find_config_path, load_settings
from scheduler.logformat import remember_secrets
from scheduler.problems import InvalidInput, Problem, plain, shown
from scheduler.service.credentials import configured_secrets
from scheduler.store import (
    DatabaseUnreachable,
    NotAllowed,
    PostNotFound,
    SchemaBehind,
    Store,
    safe_url,
)

F = TypeVar("F", bound=Callable[..., Any])
ACTOR = "cli"


def die(message: str, code: int) -> NoReturn:
    click.echo(f"igsched: {plain(message)}", err=True)  # one line: a message may quote an answer
    sys.exit(code)


def problems_exit(problems: list[Problem]) -> NoReturn:
    for p in problems:
        click.echo(str(p), err=True)
    n = len(problems)
    die(f"{n} problem{'s' if n != 1 else ''} found; nothing was changed", 2)


def handled(fn: F) -> F:
    """Map our exceptions to exit codes with a clear message, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InvalidInput as e:
            problems_exit(e.problems)
        except PostNotFound as e:
            die(f"no post with key {e}", 2)
        except NotAllowed as e:
            if e.source is not None:  # an import: name the file, the post and the field
                problems_exit([Problem(e.source[0], str(e), f"key {e.source[1]}", "account")])
            die(str(e), 2)
        except (SchemaBehind, DatabaseUnreachable) as e:
            die(" ".join(str(e).split()), 1)  # drivers' messages span lines: one line per failure
        except SQLAlchemyError as e:  # e.g. a read-only database: one line, never SQL or values
            die(f"database error: {db_error_text(e)}", 1)

    return wrapper  # type: ignore[return-value]


def db_error_text(e: BaseException) -> str:
    """What went wrong with the database, in one line, without the SQL statement or its
    parameters (SQLAlchemy puts both in its messages: a post's caption, a key)."""
    orig = getattr(e, "orig", None)
    if isinstance(orig, BaseException):
        e = orig
    elif isinstance(e, NoSuchModuleError | ModuleNotFoundError):
        return f"no driver for this kind of database ({e}); igsched uses sqlite:// or postgresql://"
    text = str(e).split("[SQL:", 1)[0].split("(Background on this error", 1)[0].strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return shown(line, 300)


class Ctx:
    def __init__(self, config: str | None) -> None:
        self.config_arg = config
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            path = find_config_path(self.config_arg)
            if path is None:
                raise InvalidInput([Problem(
                    "configuration", "no configuration file found (tried --config, $IGSCHED_CONFIG, "
                    "./config.yaml, /etc/igsched/config.yaml); start from config.example.yaml")])
            if not path.is_file():
                what = "is not a regular file" if path.exists() else "not found"
                raise InvalidInput([Problem(str(path), f"configuration file {what}")])
            self._settings = load_settings(path)
            # before any message can quote one (a token written where an account name goes)
            remember_secrets(configured_secrets(self._settings))
        return self._settings

    def store(self, upgrade: bool) -> Store:
        s = self.settings()
        try:
            return Store(s.database.url, upgrade=upgrade)
        except Exception as e:  # bad URL, driver missing, server down
            if isinstance(e, SchemaBehind | DatabaseUnreachable):
                raise
            raise DatabaseUnreachable(f"cannot use database {safe_url(s.database.url)}: {db_error_text(e)}") from None
