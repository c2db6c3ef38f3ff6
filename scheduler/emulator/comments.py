"""Comments on the model: top-level comments, replies, hiding and deleting."""

from __future__ import annotations

from .core import StateCore
from .errors import invalid_parameter
from .models import COMMENT_ID_BASE, MAX_COMMENTS_PAGE, Account, Comment
from .validation import TRANSPORT_PARAMS, parse_bool

MAX_COMMENT_CHARS = 2200


class CommentOps(StateCore):
    """Comments as `/{media-id}/comments` and `/{comment-id}` expose them."""

    def _reset_model(self) -> None:
        super()._reset_model()
        # Meta may answer a page with fewer items than asked and still a `next`: at most
        # this many comments or replies a page (None: up to the limit asked for, ≤ 50).
        self.comments_page_cap: int | None = None

    def comments_page_limit(self) -> int:
        cap = self.comments_page_cap
        return MAX_COMMENTS_PAGE if cap is None else max(1, min(cap, MAX_COMMENTS_PAGE))

    def add_comment(
        self,
        media_id: str,
        text: str,
        username: str = "visitor",
        parent_id: str | None = None,
        *,
        from_id: str | None = None,
        like_count: int = 0,
    ) -> str:
        """Add a comment (or a reply) as someone else would; returns its id."""
        with self.lock:
            self.get_media(media_id)
            if parent_id is not None:
                parent = self.get_comment(parent_id)
                if parent.media_id != media_id:
                    raise ValueError("the parent comment belongs to another media")
            comment = Comment(
                id=self._new_id(COMMENT_ID_BASE),
                media_id=media_id,
                text=text,
                username=username,
                from_id=from_id,
                created_at=self.now(),
                parent_id=parent_id,
                like_count=like_count,
            )
            self._comments[comment.id] = comment
            if parent_id is not None:
                self._comments[parent_id].replies.append(comment.id)
            return comment.id

    def add_comments(
        self,
        media_id: str,
        count: int,
        text: str = "comment",
        username: str = "visitor",
        *,
        parent_id: str | None = None,
    ) -> list[str]:
        """`count` comments ("<text> 0", "<text> 1", ...; each from "<username><i>")."""
        if not 0 < count <= 100_000:
            raise ValueError("count must be 1-100000")
        with self.lock:
            return [
                self.add_comment(media_id, f"{text} {i}", f"{username}{i}", parent_id)
                for i in range(count)
            ]

    def post_comment(self, media_id: str, params: dict[str, str], token: str | None) -> str:
        """POST /{media-id}/comments, as the token's account."""
        with self.lock:
            media = self.get_media(media_id)
            author = self._author(token, media.account)
            return self.add_comment(
                media_id, _message(params), author.username, from_id=author.ig_user_id
            )

    def post_reply(self, comment_id: str, params: dict[str, str], token: str | None) -> str:
        """POST /{comment-id}/replies: only to visible top-level comments."""
        with self.lock:
            parent = self.get_comment(comment_id)
            if parent.parent_id is not None:
                raise invalid_parameter("replies can only be made to top-level comments")
            if parent.hidden:
                raise invalid_parameter("cannot reply to a hidden comment")
            media = self.get_media(parent.media_id)
            author = self._author(token, media.account)
            return self.add_comment(
                parent.media_id,
                _message(params),
                author.username,
                comment_id,
                from_id=author.ig_user_id,
            )

    def post_mention_reply(self, ig_user_id: str, params: dict[str, str]) -> str:
        """POST /{ig-user-id}/mentions: the account answers where another account @mentioned
        it — in the thread of the comment `comment_id`, or (without it) on the captioned media
        `media_id`, as Meta's IG User Mentions reference describes. media_id and message are
        required; an unknown media or comment is 100/33."""
        with self.lock:
            for name in params:
                if name not in ("media_id", "comment_id", "message") and name not in TRANSPORT_PARAMS:
                    raise invalid_parameter(f"'{name}' is not a parameter of POST /{{ig-user-id}}/mentions")
            media_id = params.get("media_id", "")
            if not media_id:
                raise invalid_parameter("media_id is required")
            text = _message({k: v for k, v in params.items() if k not in ("media_id", "comment_id")})
            self.get_media(media_id)
            author = self._account(ig_user_id)
            comment_id = params.get("comment_id")
            if comment_id is None:
                return self.add_comment(media_id, text, author.username, from_id=author.ig_user_id)
            if not comment_id:
                raise invalid_parameter("comment_id is empty")
            comment = self.get_comment(comment_id)
            if comment.media_id != media_id:
                raise invalid_parameter(f"comment {comment_id} is not on media {media_id}")
            # the reply joins the comment's thread (a thread is one level deep)
            parent = comment.parent_id or comment.id
            return self.add_comment(media_id, text, author.username, parent, from_id=author.ig_user_id)

    def _author(self, token: str | None, media_owner: str) -> Account:
        for acct in self._accounts.values():
            if token and acct.token == token:
                return acct
        return self._account(media_owner)

    def top_level_comments(self, media_id: str) -> list[Comment]:
        """Newest first, as Graph lists them."""
        with self.lock:
            self.get_media(media_id)
            out = [c for c in self._comments.values() if c.media_id == media_id and not c.parent_id]
            return out[::-1]

    def replies(self, comment_id: str) -> list[Comment]:
        """Replies in the order they were written."""
        with self.lock:
            parent = self.get_comment(comment_id)
            return [self._comments[r] for r in parent.replies if r in self._comments]

    def hide_comment(self, comment_id: str, params: dict[str, str]) -> None:
        with self.lock:
            comment = self.get_comment(comment_id)
            for name in params:
                if name != "hide" and name not in TRANSPORT_PARAMS:
                    raise invalid_parameter(f"'{name}' is not a parameter of POST /{{comment-id}}")
            if "hide" not in params:
                raise invalid_parameter("hide is required")
            comment.hidden = parse_bool("hide", params["hide"])

    def delete_comment(self, comment_id: str) -> None:
        with self.lock:
            comment = self.get_comment(comment_id)
            for reply in comment.replies:
                self._comments.pop(reply, None)
            if comment.parent_id and comment.parent_id in self._comments:
                self._comments[comment.parent_id].replies.remove(comment_id)
            del self._comments[comment_id]

    def comments_count(self, media_id: str) -> int:
        with self.lock:
            return sum(1 for c in self._comments.values() if c.media_id == media_id)


def _message(params: dict[str, str]) -> str:
    for name in params:
        if name != "message" and name not in TRANSPORT_PARAMS:
            raise invalid_parameter(f"'{name}' is not a parameter of a comment")
    text = params.get("message", "")
    if not text.strip():
        raise invalid_parameter("message is required")
    if len(text) > MAX_COMMENT_CHARS:
        raise invalid_parameter(f"message is longer than {MAX_COMMENT_CHARS} characters")
    return text
