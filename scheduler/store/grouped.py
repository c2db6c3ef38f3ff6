"""Store writes that are one unit of work: the method builds `work(conn)`, and the store
decides how it runs (store/__init__.py `Store.call`).

Called as usual (`store.transition(post, ...)`), such a method runs its work in a transaction
of its own, or, on SQLite, in a group commit, and returns what the work returned. From the
event loop, `Store.call` hands the work itself to the group commit (group.py `submit`), so the
daemon's hot writes wait for their commit without a thread each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, cast, overload

from sqlalchemy import Connection

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[[Connection], T]


class OneByOne(Generic[T]):
    """A unit of work each of whose statements is atomic on its own (a compare-and-set on a
    lease token): it needs no transaction around it. On PostgreSQL it runs in autocommit, so
    a transition is one round trip instead of four (BEGIN, UPDATE, INSERT, COMMIT); anywhere
    else it runs like any other work."""

    __slots__ = ("_work",)

    def __init__(self, work: Work[T]) -> None:
        self._work = work

    def __call__(self, conn: Connection) -> T:
        return self._work(conn)


class _Writes(Protocol):
    def _write(self, work: Work[T]) -> T: ...


class BoundWrite(Generic[P, T]):
    """A grouped write bound to its store: call it for the result, or take its `work`."""

    __slots__ = ("_make", "_store")

    def __init__(self, store: _Writes, make: Callable[Concatenate[Any, P], Work[T]]) -> None:
        self._store = store
        self._make = make

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._store._write(self._make(self._store, *args, **kwargs))

    def work(self, *args: P.args, **kwargs: P.kwargs) -> Work[T]:
        """The unit of work, with the call's own reading of the clock (cheap: no I/O)."""
        return self._make(self._store, *args, **kwargs)


class grouped(Generic[P, T]):
    """Mark a store method that returns its unit of work (see the module's docstring)."""

    def __init__(self, make: Callable[Concatenate[Any, P], Work[T]]) -> None:
        self._make = make
        functools.update_wrapper(cast(Any, self), make)  # name, docstring, signature for help()

    @overload
    def __get__(self, store: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, store: _Writes, owner: type | None = None) -> BoundWrite[P, T]: ...

    def __get__(self, store: _Writes | None, owner: type | None = None) -> BoundWrite[P, T] | Self:
        if store is None:  # looked up on the class
            return self
        return BoundWrite(store, self._make)

    def __call__(self, store: _Writes, *args: P.args, **kwargs: P.kwargs) -> T:
        """Called on the class with the store first, as a plain method would be."""
        return store._write(self._make(store, *args, **kwargs))
