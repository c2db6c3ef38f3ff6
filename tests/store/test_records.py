"""Records built from rows: the fast path (a row that is exactly the record) and the general
one give the same record, on both databases."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from scheduler.store import Store
from scheduler.store import records as rec
from scheduler.store.schema import accounts, posts
from tests.helpers import image_spec, settings_for


def _by_mapping(cls: type, row: sa.Row) -> object:
    m = row._mapping
    return cls(**{f.name: m[f.name] for f in dataclasses.fields(cls)})


def test_a_row_that_is_the_record_gives_the_same_record_as_by_name(db_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(db_url)
    store.sync_accounts(settings_for(db_url).accounts)
    store.enqueue([image_spec("r", caption="café"), image_spec("s")], "t")
    with store.engine.connect() as c:
        post_rows = c.execute(sa.select(posts).order_by(posts.c.id)).all()
        account_row = c.execute(sa.select(accounts)).first()
        # the same columns in another order, and with one more: the general path
        shuffled = c.execute(sa.select(*reversed(list(posts.c)), sa.literal(1).label("extra"))).first()
    assert account_row is not None and shuffled is not None
    expected = [_by_mapping(rec.PostRecord, row) for row in post_rows]
    by_name = _by_mapping(rec.PostRecord, shuffled)

    def no_init(*_a: object, **_k: object) -> None:
        raise AssertionError("the fast path builds the record without __init__")

    monkeypatch.setattr(rec.PostRecord, "__init__", no_init)
    for row, want in zip(post_rows, expected, strict=True):
        fast = rec.PostRecord.from_row(row)
        assert type(fast) is rec.PostRecord
        assert fast == want
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.state = "x"  # type: ignore[misc]
    with pytest.raises(AssertionError, match="without __init__"):  # not the order: by name
        rec.PostRecord.from_row(shuffled)
    monkeypatch.undo()
    assert rec.PostRecord.from_row(shuffled) == by_name
    assert dataclasses.replace(rec.PostRecord.from_row(post_rows[0]), state="x").state == "x"
    assert rec.AccountRecord.from_row(account_row) == _by_mapping(rec.AccountRecord, account_row)


def test_no_record_has_a_post_init_for_the_fast_path_to_skip() -> None:
    for cls in rec._FromRow.__subclasses__():
        assert "__post_init__" not in vars(cls), cls
        assert not hasattr(cls, "__slots__") or "__dict__" in cls.__slots__, cls
