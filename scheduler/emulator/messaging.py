"""Direct messages and people: the Send API (`POST /{id}/messages`) and `GET /{igsid}`.

The Send API body is checked as Meta checks it (facts sheet §6): one of text or attachment,
text ≤ 1,000 UTF-8 bytes, templates' limits, quick replies ≤ 13 (titles cut at 20), a known
recipient. People are set up by tests: one may be unavailable (551/1545041), have DMs turned
off (200/2534041), or have last written more than 24 h ago (10/2534022, 7 days with the
HUMAN_AGENT tag). A private reply (`recipient.comment_id`) goes once per comment, within
7 days of it, at most 750 an hour per account.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .core import StateCore
from .errors import GraphError, invalid_parameter, object_missing
from .validation import TRANSPORT_PARAMS

MAX_TEXT_BYTES = 1000
MAX_BUTTON_TEXT = 640
MAX_BUTTONS = 3
MAX_ELEMENTS = 10
MAX_ELEMENT_TEXT = 80
MAX_QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20  # longer titles are cut, not refused
MAX_PAYLOAD = 1000
WINDOW_S = 24 * 3600
HUMAN_AGENT_WINDOW_S = 7 * 86400
PRIVATE_REPLY_WINDOW_S = 7 * 86400
PRIVATE_REPLIES_PER_HOUR = 750
ATTACHMENT_TYPES = ("image", "audio", "video", "file", "template", "MEDIA_SHARE")
BODY_KEYS = frozenset({"recipient", "message", "messaging_type", "tag"})
MESSAGE_KEYS = ("text", "attachment", "quick_replies")


@dataclass
class Person:
    """Someone who can be messaged (an IGSID), with the switches tests set."""

    igsid: str
    name: str
    username: str
    profile_pic: str
    unavailable: bool = False  # 551/1545041
    dms_disabled: bool = False  # 200/2534041
    last_message_at: float | None = None  # None: the emulator does not know (no window check)
    follower_count: int = 0
    is_verified_user: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "igsid": self.igsid,
            "name": self.name,
            "username": self.username,
            "profile_pic": self.profile_pic,
            "unavailable": self.unavailable,
            "dms_disabled": self.dms_disabled,
            "last_message_at": self.last_message_at,
        }


@dataclass
class SentMessage:
    id: str
    account: str
    recipient_id: str
    comment_id: str | None
    message: dict[str, Any]
    sent_at: float
    tag: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "message_id": self.id,
            "account": self.account,
            "recipient_id": self.recipient_id,
            "comment_id": self.comment_id,
            "message": json.loads(json.dumps(self.message)),
            "sent_at": self.sent_at,
            "tag": self.tag,
        }


def person_unavailable() -> GraphError:
    return GraphError(
        551,
        "This person isn't available right now.",
        1545041,
        user_title="Message not sent",
        user_msg="This person isn't available right now.",
    )


def dms_disabled() -> GraphError:
    return GraphError(
        200,
        "(#200) The user has turned off messages from businesses.",
        2534041,
        user_title="Message not sent",
        user_msg="This person does not accept messages.",
    )


def outside_window(what: str) -> GraphError:
    return GraphError(
        10,
        f"(#10) This message is sent outside of allowed window. {what}",
        2534022,
        user_title="Message not sent",
        user_msg="This message is sent outside of allowed window.",
    )


def no_matching_user() -> GraphError:
    return GraphError(100, "(#100) No matching user found", 2018001)


def _commenter_id(username: str) -> str:
    """A stable IGSID for a commenter added without one."""
    return str(900_000_000_000_000 + int(hashlib.sha256(username.encode()).hexdigest()[:12], 16))


class MessagingOps(StateCore):
    """People, the Send API and private replies."""

    def _reset_model(self) -> None:
        super()._reset_model()
        self._people: dict[str, Person] = {}
        self._messages: list[SentMessage] = []
        self._private_replied: set[str] = set()
        self._private_reply_times: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ setup (tests)
    def add_person(
        self,
        igsid: str | int,
        name: str | None = None,
        username: str | None = None,
        profile_pic: str | None = None,
        *,
        unavailable: bool | None = None,
        dms_disabled: bool | None = None,
        last_message_s_ago: float | None = None,
        follower_count: int | None = None,
    ) -> dict[str, Any]:
        """Create or update a person. `last_message_s_ago`: they wrote that long ago (the
        24 h window starts then); without it the emulator knows of no message."""
        key = str(igsid)
        if not key.isdigit():
            raise ValueError("an IGSID is made of digits")
        with self.lock:
            person = self._people.get(key)
            if person is None:
                person = Person(
                    key,
                    name or f"Person {key}",
                    username or f"person{key}",
                    profile_pic or f"https://cdn.example.com/profile/{key}.jpg",
                )
                self._people[key] = person
            else:
                person.name = name or person.name
                person.username = username or person.username
                person.profile_pic = profile_pic or person.profile_pic
            if unavailable is not None:
                person.unavailable = bool(unavailable)
            if dms_disabled is not None:
                person.dms_disabled = bool(dms_disabled)
            if last_message_s_ago is not None:
                person.last_message_at = self.now() - float(last_message_s_ago)
            if follower_count is not None:
                person.follower_count = int(follower_count)
            return person.snapshot()

    def people(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {k: p.snapshot() for k, p in self._people.items()}

    def get_person(self, igsid: str) -> Person:
        with self.lock:
            person = self._people.get(igsid)
            if person is None:
                raise object_missing(igsid)
            return person

    def sent_messages(self, account: str | None = None) -> list[dict[str, Any]]:
        """Messages the API accepted, oldest first."""
        with self.lock:
            return [m.snapshot() for m in self._messages if account in (None, m.account)]

    # ------------------------------------------------------------------ lookups
    def lookup(self, node_id: str) -> tuple[str, str | None]:
        with self.lock:
            if node_id in self._people:
                return "person", None
            for acct in self._accounts.values():
                if acct.page_id and acct.page_id == node_id:
                    return "account", acct.ig_user_id
            return super().lookup(node_id)

    # ------------------------------------------------------------------ the Send API
    def send_message(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        """POST /{ig-user-id|page-id|me}/messages → {recipient_id, message_id}."""
        with self.lock:
            for name in params:
                if name not in BODY_KEYS and name not in TRANSPORT_PARAMS:
                    raise invalid_parameter(f"'{name}' is not a parameter of the Send API")
            recipient = _object(params, "recipient")
            message = _object(params, "message")
            tag = params.get("tag")
            if tag is not None and tag != "HUMAN_AGENT":
                raise invalid_parameter(f"tag {tag!r} is not supported for Instagram")
            rendered = check_message(message, self._own_media_check(account))
            keys = set(recipient)
            if keys == {"id"}:
                return self._to_person(account, str(recipient["id"]), rendered, tag)
            if keys == {"comment_id"}:
                if "text" not in rendered or "quick_replies" in rendered:
                    raise invalid_parameter("a private reply takes message[text] only")
                return self._private_reply(account, str(recipient["comment_id"]), rendered)
            raise invalid_parameter("recipient must have exactly one of id or comment_id")

    def _own_media_check(self, account: str) -> Callable[[str], None]:
        def check(media_id: str) -> None:
            media = self._media.get(media_id)
            if media is None or media.account != account or not media.is_top_level:
                raise invalid_parameter(
                    f"MEDIA_SHARE: {media_id!r} is not a post of the sending account"
                )

        return check

    def _to_person(
        self, account: str, igsid: str, message: dict[str, Any], tag: str | None
    ) -> dict[str, Any]:
        person = self._people.get(igsid)
        if person is None:
            raise no_matching_user()
        if person.unavailable:
            raise person_unavailable()
        if person.dms_disabled:
            raise dms_disabled()
        if person.last_message_at is not None:
            window = HUMAN_AGENT_WINDOW_S if tag == "HUMAN_AGENT" else WINDOW_S
            if self.now() - person.last_message_at > window:
                raise outside_window("The person last wrote more than the window ago.")
        return self._record(account, igsid, None, message, tag)

    def _private_reply(
        self, account: str, comment_id: str, message: dict[str, Any]
    ) -> dict[str, Any]:
        comment = self._comments.get(comment_id)
        media = self._media.get(comment.media_id) if comment else None
        if comment is None or media is None or media.account != account:
            raise object_missing(comment_id, "post")
        if comment_id in self._private_replied:
            # *chosen*: Meta allows one private reply per comment; its exact code is not
            # documented, so the emulator answers a plain invalid-parameter error.
            raise invalid_parameter("a private reply has already been sent to this comment")
        if self.now() - comment.created_at > PRIVATE_REPLY_WINDOW_S:
            raise outside_window("Private replies must be sent within 7 days of the comment.")
        now = self.now()
        times = [t for t in self._private_reply_times.get(account, []) if now - t < 3600]
        if len(times) >= PRIVATE_REPLIES_PER_HOUR:
            raise GraphError(
                613, "(#613) Calls to this api have exceeded the rate limit.", is_transient=True
            )
        times.append(now)
        self._private_reply_times[account] = times
        self._private_replied.add(comment_id)
        recipient = comment.from_id or _commenter_id(comment.username)
        return self._record(account, recipient, comment_id, message, None)

    def _record(
        self,
        account: str,
        recipient: str,
        comment_id: str | None,
        message: dict[str, Any],
        tag: str | None,
    ) -> dict[str, Any]:
        msg = SentMessage(
            id="aWdfZAG1" + secrets.token_urlsafe(24),
            account=account,
            recipient_id=recipient,
            comment_id=comment_id,
            message=message,
            sent_at=self.now(),
            tag=tag,
        )
        self._messages.append(msg)
        return {"recipient_id": recipient, "message_id": msg.id}


# ---------------------------------------------------------------------- body checks
def _object(params: dict[str, str], name: str) -> dict[str, Any]:
    raw = params.get(name)
    if raw is None or not raw.strip():
        raise invalid_parameter(f"param {name} must be non-empty")
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid_parameter(f"param {name} must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid_parameter(f"param {name} must be a JSON object")
    return value


def _text(value: Any, where: str, max_chars: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid_parameter(f"{where} must be a non-empty string")
    if max_chars is not None and len(value) > max_chars:
        raise invalid_parameter(f"length of {where} must be at most {max_chars} characters")
    return value


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise invalid_parameter(f"{where} must be an http(s) URL")
    return value


def _keys(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            raise invalid_parameter(f"'{key}' is not a field of {where}")


def _buttons(value: Any, where: str) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BUTTONS:
        raise invalid_parameter(f"{where} must have 1-{MAX_BUTTONS} buttons")
    for i, button in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(button, dict):
            raise invalid_parameter(f"{at} must be an object")
        kind = button.get("type")
        _text(button.get("title"), f"{at}[title]")
        if kind == "web_url":
            _keys(button, ("type", "title", "url"), at)
            _url(button.get("url"), f"{at}[url]")
        elif kind == "postback":
            _keys(button, ("type", "title", "payload"), at)
            _text(button.get("payload"), f"{at}[payload]", MAX_PAYLOAD)
        else:
            raise invalid_parameter(f"{at}[type] must be web_url or postback")


def _template(payload: dict[str, Any]) -> None:
    kind = payload.get("template_type")
    where = "message[attachment][payload]"
    if kind == "button":
        _keys(payload, ("template_type", "text", "buttons"), where)
        _text(payload.get("text"), f"{where}[text]", MAX_BUTTON_TEXT)
        _buttons(payload.get("buttons"), f"{where}[buttons]")
    elif kind == "generic":
        _keys(payload, ("template_type", "elements"), where)
        elements = payload.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ELEMENTS:
            raise invalid_parameter(f"{where}[elements] must have 1-{MAX_ELEMENTS} elements")
        for i, el in enumerate(elements):
            at = f"{where}[elements][{i}]"
            if not isinstance(el, dict):
                raise invalid_parameter(f"{at} must be an object")
            fields = ("title", "subtitle", "image_url", "default_action", "buttons")
            _keys(el, fields, at)
            _text(el.get("title"), f"{at}[title]", MAX_ELEMENT_TEXT)
            if "subtitle" in el:
                _text(el["subtitle"], f"{at}[subtitle]", MAX_ELEMENT_TEXT)
            if "image_url" in el:
                _url(el["image_url"], f"{at}[image_url]")
            if "default_action" in el:
                action = el["default_action"]
                if not isinstance(action, dict) or action.get("type") != "web_url":
                    raise invalid_parameter(f"{at}[default_action] must be a web_url action")
                _keys(action, ("type", "url"), f"{at}[default_action]")
                _url(action.get("url"), f"{at}[default_action][url]")
            if "buttons" in el:
                _buttons(el["buttons"], f"{at}[buttons]")
    else:
        raise invalid_parameter(f"{where}[template_type] must be button or generic")


def check_message(message: dict[str, Any], own_media: Callable[[str], None]) -> dict[str, Any]:
    """Meta's checks of `message`; returns it as stored (quick-reply titles cut at 20)."""
    _keys(message, MESSAGE_KEYS, "message")
    if ("text" in message) == ("attachment" in message):
        raise invalid_parameter("message must have exactly one of text or attachment")
    out = json.loads(json.dumps(message))
    if "text" in message:
        text = _text(message["text"], "message[text]")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            raise invalid_parameter(
                f"length of param message[text] must be less than or equal to {MAX_TEXT_BYTES}"
            )
    if "quick_replies" in message:
        if "text" not in message:
            raise invalid_parameter("quick_replies go with message[text]")
        replies = message["quick_replies"]
        if not isinstance(replies, list) or not 1 <= len(replies) <= MAX_QUICK_REPLIES:
            raise invalid_parameter(f"message[quick_replies] must have 1-{MAX_QUICK_REPLIES}")
        for i, reply in enumerate(replies):
            at = f"message[quick_replies][{i}]"
            if not isinstance(reply, dict) or reply.get("content_type") != "text":
                raise invalid_parameter(f"{at}[content_type] must be text")
            _keys(reply, ("content_type", "title", "payload", "image_url"), at)
            title = _text(reply.get("title"), f"{at}[title]")
            _text(reply.get("payload"), f"{at}[payload]", MAX_PAYLOAD)
            if "image_url" in reply:
                _url(reply["image_url"], f"{at}[image_url]")
            out["quick_replies"][i]["title"] = title[:QUICK_REPLY_TITLE]
    if "attachment" in message:
        att = message["attachment"]
        if not isinstance(att, dict):
            raise invalid_parameter("message[attachment] must be an object")
        _keys(att, ("type", "payload"), "message[attachment]")
        kind, payload = att.get("type"), att.get("payload")
        if kind not in ATTACHMENT_TYPES:
            raise invalid_parameter(
                f"message[attachment][type] must be one of {', '.join(ATTACHMENT_TYPES)}"
            )
        if not isinstance(payload, dict):
            raise invalid_parameter("message[attachment][payload] must be an object")
        if kind == "template":
            _template(payload)
        elif kind == "MEDIA_SHARE":
            _keys(payload, ("id",), "message[attachment][payload]")
            own_media(str(payload.get("id", "")))
        else:
            _keys(payload, ("url", "is_reusable"), "message[attachment][payload]")
            _url(payload.get("url"), "message[attachment][payload][url]")
            if "is_reusable" in payload and not isinstance(payload["is_reusable"], bool):
                raise invalid_parameter("message[attachment][payload][is_reusable] is a boolean")
    return out


def person_node_fields(person: Person) -> dict[str, Any]:
    """What `GET /{igsid}` can answer (Instagram user profile API)."""
    return {
        "id": person.igsid,
        "name": person.name,
        "username": person.username,
        "profile_pic": person.profile_pic,
        "follower_count": person.follower_count,
        "is_verified_user": person.is_verified_user,
        "is_user_follow_business": False,
        "is_business_follow_user": False,
    }


__all__ = ["MessagingOps", "Person", "SentMessage", "check_message", "person_node_fields"]
