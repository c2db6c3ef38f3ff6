"""Permalinks read in bulk after a burst: each post's permalink is set once (never
overwritten), and a post with no first comment to post has its follow-up marked done with
it, so it is not claimed only to find nothing left to do. A first comment still to post keeps
its follow-up; so does a post the bulk read did not find."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from scheduler.store import Store
from tests.helpers import image_spec, settings_for


def _published(store: Store, keys: list[str]) -> None:
    """As a burst leaves its posts: published with a media id, follow-up pending."""
    with store.engine.begin() as c:
        for k in keys:
            c.execute(sa.text("UPDATE posts SET state = 'published', media_id = :mid, followup_pending = :t "
                              "WHERE key = :k"), {"mid": f"m-{k}", "k": k, "t": True})


def test_a_bulk_read_finishes_the_follow_up_of_posts_with_nothing_else_to_do(db_url: str) -> None:
    store = Store(db_url)
    store.sync_accounts(settings_for(db_url).accounts)
    store.enqueue([image_spec("plain"), image_spec("commented", first_comment="first!"),
                   image_spec("linked"), image_spec("unseen")], "t")
    _published(store, ["plain", "commented", "linked", "unseen"])
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE posts SET permalink = 'https://instagram.example/p/own' WHERE key = 'linked'"))

    found = {f"m-{k}": f"https://instagram.example/p/{k}" for k in ("plain", "commented", "linked")}
    assert store.set_permalinks("shop", found) == 2  # "linked" had its own already

    posts = {k: store.get(k) for k in ("plain", "commented", "linked", "unseen")}
    assert {k: (p.permalink, p.followup_pending) for k, p in posts.items() if p} == {
        "plain": ("https://instagram.example/p/plain", False),
        "commented": ("https://instagram.example/p/commented", True),  # its first comment is still to post
        "linked": ("https://instagram.example/p/own", True),  # not written: its own follow-up finishes it
        "unseen": (None, True),  # not on the page: its follow-up reads it alone
    }
    assert posts["commented"] is not None and posts["commented"].comment_state == "pending"
    assert {p.state for p in posts.values() if p} == {"published"}  # nothing else moved


def test_a_follow_up_under_way_when_the_bulk_read_lands_finishes_as_before(db_url: str) -> None:
    """The bulk read does not take the post's lease: the worker that holds it ends the
    follow-up with its own fenced write, and the post is not claimed again."""
    store = Store(db_url)
    store.sync_accounts(settings_for(db_url).accounts)
    store.enqueue([image_spec("held")], "t")
    _published(store, ["held"])
    with store.engine.begin() as c:  # due for its follow-up now
        c.execute(sa.text("UPDATE posts SET next_action_at = :past"), {"past": store.now() - timedelta(seconds=5)})
    [held] = store.claim_due("worker", 30, 10)
    assert held.key == "held" and held.lease_token is not None

    assert store.set_permalinks("shop", {"m-held": "https://instagram.example/p/held"}) == 1
    during = store.get("held")
    assert during is not None and during.lease_token == held.lease_token  # the lease is untouched

    done = store.update(held, "worker", None, followup_pending=False, permalink="https://instagram.example/p/held")
    assert (done.lease_token, done.followup_pending, done.permalink) == (
        None, False, "https://instagram.example/p/held")
    assert store.claim_due("other", 30, 10) == []
