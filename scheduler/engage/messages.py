"""Outbound messages: a typed model, its validation, and its rendering to Meta's request body.

Pure: no I/O. Every limit Meta applies is checked here first, so bad input is refused (with the field and the rule) before any call.
A message is one of: text (with optional quick replies), an image/audio/video by https URL, a
button template, a generic template (cards), or a share of one of the account's own posts.
It goes `to` a person (an IGSID) or, as a private reply, to the author of a `comment`.
Message files are read by `scheduler.engage.messagefile`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from scheduler.graph.engagement import (
    AttachmentKind,
    Button,
    Card,
    QuickReply,
    attachment_message,
    button_template_message,
    generic_template_message,
    media_share_message,
    send_body,
    text_message,
    to_commenter,
    to_person,
)
from scheduler.problems import InvalidInput, Problem, foreign_keys

# Meta's limits (facts sheet §6; template figures are third-party, see README "Engagement").
MAX_TEXT_BYTES = 1000
MAX_BUTTON_TEXT_CHARS = 640
MIN_BUTTONS, MAX_BUTTONS = 1, 3
MAX_CARDS = 10
MAX_CARD_TEXT_CHARS = 80  # title and subtitle
MAX_CARD_BUTTONS = 3
MAX_QUICK_REPLIES = 13
MAX_TITLE_CHARS = 20  # quick-reply and button titles
MAX_PAYLOAD_CHARS = 1000
MAX_URL_CHARS = 2000
MAX_ID_DIGITS = 32

TOP_KEYS = (
    "to",
    "comment",
    "text",
    "quick_replies",
    "buttons",
    "cards",
    "image",
    "audio",
    "video",
    "reusable",
    "share",
)
BUTTON_KEYS = ("title", "url", "postback")
CARD_KEYS = ("title", "subtitle", "image", "url", "buttons")
QUICK_REPLY_KEYS = ("title", "payload", "image")
ATTACHMENT_KEYS: tuple[AttachmentKind, ...] = ("image", "audio", "video")


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str
    quick_replies: tuple[QuickReply, ...] = ()


@dataclass(frozen=True)
class Attachment:
    kind: AttachmentKind
    url: str
    reusable: bool = False


@dataclass(frozen=True)
class ButtonTemplate:
    text: str
    buttons: tuple[Button, ...]


@dataclass(frozen=True)
class GenericTemplate:
    cards: tuple[Card, ...]


@dataclass(frozen=True)
class MediaShare:
    media_id: str


Content = Text | Attachment | ButtonTemplate | GenericTemplate | MediaShare
MessageKind = Literal["text", "attachment", "button_template", "generic_template", "media_share"]


@dataclass(frozen=True)
class OutboundMessage:
    """A validated message and its recipient: exactly one of `to` (IGSID) or `comment`."""

    content: Content
    to: str | None = None
    comment: str | None = None

    @property
    def kind(self) -> MessageKind:
        return _KIND[type(self.content)]

    @property
    def is_private_reply(self) -> bool:
        return self.comment is not None

    def request_body(self) -> dict[str, Any]:
        """Meta's Send API body: `{"recipient": {...}, "message": {...}}`."""
        recipient = to_commenter(self.comment) if self.comment is not None else None
        if recipient is None:
            assert self.to is not None  # validation guarantees one of the two
            recipient = to_person(self.to)
        return send_body(recipient, render_content(self.content))


_KIND: dict[type, MessageKind] = {
    Text: "text",
    Attachment: "attachment",
    ButtonTemplate: "button_template",
    GenericTemplate: "generic_template",
    MediaShare: "media_share",
}


def render_content(content: Content) -> dict[str, Any]:
    """The `message` object of a Send API body."""
    if isinstance(content, Text):
        return text_message(content.text, content.quick_replies)
    if isinstance(content, Attachment):
        return attachment_message(content.kind, content.url, content.reusable)
    if isinstance(content, ButtonTemplate):
        return button_template_message(content.text, content.buttons)
    if isinstance(content, GenericTemplate):
        return generic_template_message(content.cards)
    return media_share_message(content.media_id)


# --- validation ----------------------------------------------------------------------------


class _Checker:
    """Collects every problem of one message, each with its field and the rule broken."""

    def __init__(self, source: str, entry: str | None) -> None:
        self.source = source
        self.entry = entry
        self.problems: list[Problem] = []

    def fail(self, field: str | None, message: str) -> None:
        self.problems.append(Problem(self.source, message, self.entry, field))

    def keys(self, data: Mapping[Any, Any], allowed: Sequence[str], where: str | None) -> None:
        for key in data:
            if key not in allowed:
                field = f"{where}.{key}" if where else str(key)
                self.fail(field, f"unknown key; allowed here: {', '.join(allowed)}")

    def text(
        self,
        value: Any,
        field: str,
        *,
        max_chars: int | None = None,
        max_bytes: int | None = None,
    ) -> str | None:
        if not isinstance(value, str):
            self.fail(field, f"must be text, not {_type_name(value)}")
            return None
        if not value.strip():
            self.fail(field, "must not be empty")
            return None
        if "\x00" in value:
            self.fail(field, "must not contain NUL characters")
            return None
        if max_chars is not None and len(value) > max_chars:
            self.fail(field, f"is {len(value)} characters; the limit is {max_chars}")
            return None
        if max_bytes is not None:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                self.fail(field, f"is {size:,} bytes in UTF-8; the limit is {max_bytes:,} bytes")
                return None
        return value

    def digits(self, value: Any, field: str, what: str) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            shown = repr(value) if isinstance(value, str | int) else _type_name(value)
            self.fail(field, f"{what} must be made of digits only, not {shown}")
            return None
        if len(value) > MAX_ID_DIGITS:
            self.fail(field, f"{what} is longer than {MAX_ID_DIGITS} digits")
            return None
        return value

    def url(self, value: Any, field: str) -> str | None:
        if not isinstance(value, str):
            self.fail(field, f"must be an https URL, not {_type_name(value)}")
            return None
        problem = url_problem(value)
        if problem:
            self.fail(field, problem)
            return None
        return value

    def items(self, value: Any, field: str, low: int, high: int, what: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.fail(field, f"must be a list of {what}, not {_type_name(value)}")
            return None
        if not low <= len(value) <= high:
            span = f"{low}-{high}" if low else f"at most {high}"
            self.fail(field, f"has {len(value)} {what}; a message takes {span}")
            return None
        return value

    def mapping(self, value: Any, field: str) -> Mapping[Any, Any] | None:
        if not isinstance(value, dict):
            self.fail(field, f"must be a mapping (key: value), not {_type_name(value)}")
            return None
        return value


def url_problem(url: str) -> str | None:
    """Why `url` is not a usable https URL for Meta to fetch or open; None if it is."""
    if len(url) > MAX_URL_CHARS:
        return f"the URL is longer than {MAX_URL_CHARS} characters"
    if url != url.strip() or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        return "the URL must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as e:
        return f"not a valid URL ({e})"
    if parts.scheme.lower() != "https":
        return "only https URLs are allowed"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL must not contain a user name or password"
    if port == 0:
        return "the URL's port must be 1-65535"
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        if "." not in parts.hostname:
            return "the URL's host must be a public domain name"
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "true/false", int: "a number", float: "a number", list: "a list"}.get(
        type(value), "a mapping" if isinstance(value, dict) else type(value).__name__
    )


def _button(c: _Checker, raw: Any, field: str) -> Button | None:
    data = c.mapping(raw, field)
    if data is None:
        return None
    c.keys(data, BUTTON_KEYS, field)
    title = c.text(data.get("title"), f"{field}.title", max_chars=MAX_TITLE_CHARS)
    has_url, has_postback = "url" in data, "postback" in data
    if has_url == has_postback:
        c.fail(field, "a button needs exactly one of url (opens a page) or postback (a payload)")
        return None
    if has_url:
        url = c.url(data["url"], f"{field}.url")
        return Button(title, url=url) if title and url else None
    payload = c.text(data["postback"], f"{field}.postback", max_chars=MAX_PAYLOAD_CHARS)
    return Button(title, payload=payload) if title and payload else None


def _buttons(c: _Checker, raw: Any, field: str, low: int, high: int) -> tuple[Button, ...] | None:
    items = c.items(raw, field, low, high, "buttons")
    if items is None:
        return None
    out = [_button(c, b, f"{field}[{i}]") for i, b in enumerate(items)]
    return None if any(b is None for b in out) else tuple(b for b in out if b)


def _card(c: _Checker, raw: Any, field: str) -> Card | None:
    data = c.mapping(raw, field)
    if data is None:
        return None
    n = len(c.problems)
    c.keys(data, CARD_KEYS, field)
    title = c.text(data.get("title"), f"{field}.title", max_chars=MAX_CARD_TEXT_CHARS)
    subtitle = image = url = None
    if "subtitle" in data:
        subtitle = c.text(data["subtitle"], f"{field}.subtitle", max_chars=MAX_CARD_TEXT_CHARS)
    if "image" in data:
        image = c.url(data["image"], f"{field}.image")
    if "url" in data:
        url = c.url(data["url"], f"{field}.url")
    buttons: tuple[Button, ...] | None = ()
    if "buttons" in data:
        buttons = _buttons(c, data["buttons"], f"{field}.buttons", 1, MAX_CARD_BUTTONS)
    if len(c.problems) > n or title is None or buttons is None:
        return None
    return Card(title, subtitle=subtitle, image_url=image, default_url=url, buttons=buttons)


def _quick_reply(c: _Checker, raw: Any, field: str) -> QuickReply | None:
    data = c.mapping(raw, field)
    if data is None:
        return None
    n = len(c.problems)
    c.keys(data, QUICK_REPLY_KEYS, field)
    title = c.text(data.get("title"), f"{field}.title", max_chars=MAX_TITLE_CHARS)
    payload = c.text(data.get("payload"), f"{field}.payload", max_chars=MAX_PAYLOAD_CHARS)
    image = c.url(data["image"], f"{field}.image") if "image" in data else None
    if len(c.problems) > n or title is None or payload is None:
        return None
    return QuickReply(title, payload, image)


def _content(c: _Checker, data: Mapping[str, Any]) -> Content | None:
    attachments = [k for k in ATTACHMENT_KEYS if k in data]
    forms = [k for k in ("buttons", "cards", "share", *attachments) if k in data]
    if len(forms) > 1:
        c.fail(forms[1], f"a message is one kind; '{forms[0]}' and '{forms[1]}' do not go together")
        return None
    form = forms[0] if forms else "text"
    if "reusable" in data and form not in ATTACHMENT_KEYS:
        c.fail("reusable", "only goes with image, audio or video")
    if "quick_replies" in data and form != "text":
        c.fail("quick_replies", "only go with a plain text message")
    if "text" in data and form not in ("text", "buttons"):
        c.fail("text", f"does not go with '{form}' (text goes alone or with buttons)")

    if form == "text":
        if "text" not in data:
            c.fail("text", "is required (or one of buttons, cards, image, audio, video, share)")
            return None
        text = c.text(data["text"], "text", max_bytes=MAX_TEXT_BYTES)
        replies: tuple[QuickReply, ...] = ()
        if "quick_replies" in data:
            raw = c.items(data["quick_replies"], "quick_replies", 1, MAX_QUICK_REPLIES, "replies")
            if raw is None:
                return None
            parsed = [_quick_reply(c, q, f"quick_replies[{i}]") for i, q in enumerate(raw)]
            if any(q is None for q in parsed):
                return None
            replies = tuple(q for q in parsed if q)
        return Text(text, replies) if text else None
    if form == "buttons":
        if "text" not in data:
            c.fail("text", "is required with buttons (the template's text)")
            return None
        text = c.text(data["text"], "text", max_chars=MAX_BUTTON_TEXT_CHARS)
        buttons = _buttons(c, data["buttons"], "buttons", MIN_BUTTONS, MAX_BUTTONS)
        return ButtonTemplate(text, buttons) if text and buttons else None
    if form == "cards":
        raw_cards = c.items(data["cards"], "cards", 1, MAX_CARDS, "cards")
        if raw_cards is None:
            return None
        cards = [_card(c, card, f"cards[{i}]") for i, card in enumerate(raw_cards)]
        return (
            None if any(x is None for x in cards) else GenericTemplate(tuple(x for x in cards if x))
        )
    if form == "share":
        media_id = c.digits(data["share"], "share", "a media id")
        return MediaShare(media_id) if media_id else None
    kind = next(k for k in ATTACHMENT_KEYS if k == form)
    url = c.url(data[form], form)
    reusable = data.get("reusable", False)
    if not isinstance(reusable, bool):
        c.fail("reusable", f"must be true or false, not {_type_name(reusable)}")
        return None
    return Attachment(kind, url, reusable) if url else None


def parse_message(
    data: Any, *, source: str = "message", entry: str | None = None
) -> OutboundMessage:
    """A validated message from a mapping (a message file, a queue entry, CLI flags).

    Raises InvalidInput with every problem, each naming `source`, `entry` and the field.
    """
    c = _Checker(source, entry)
    if not isinstance(data, dict):
        c.fail(None, f"a message must be a mapping (key: value), not {_type_name(data)}")
        raise InvalidInput(c.problems)
    if (foreign := foreign_keys(data, TOP_KEYS)) is not None:
        c.fail(None, foreign)
        raise InvalidInput(c.problems)
    c.keys(data, TOP_KEYS, None)
    to = comment = None
    if ("to" in data) == ("comment" in data):
        c.fail("to", "give exactly one of to (an IGSID) or comment (a comment id, private reply)")
    elif "to" in data:
        to = c.digits(data["to"], "to", "a recipient id (IGSID)")
    else:
        comment = c.digits(data["comment"], "comment", "a comment id")
    content = _content(c, data)
    if comment is not None and content is not None and not isinstance(content, Text):
        c.fail("comment", "a private reply is a text message")
    if comment is not None and isinstance(content, Text) and content.quick_replies:
        c.fail("quick_replies", "a private reply is plain text, without quick replies")
    if c.problems or content is None or (to is None and comment is None):
        if not c.problems:  # every None above came with a problem; keep that promise visible
            c.fail(None, "the message is not valid")
        raise InvalidInput(c.problems)
    return OutboundMessage(content=content, to=to, comment=comment)


def message_from_flags(
    *,
    to: str | None = None,
    comment: str | None = None,
    text: str | None = None,
    quick_replies: Sequence[str] = (),
    image: str | None = None,
    audio: str | None = None,
    video: str | None = None,
    reusable: bool = False,
    share: str | None = None,
) -> OutboundMessage:
    """The simple kinds from command-line flags; `quick_replies` are "TITLE=PAYLOAD" strings."""
    data: dict[str, Any] = {}
    for key, value in (
        ("to", to),
        ("comment", comment),
        ("text", text),
        ("image", image),
        ("audio", audio),
        ("video", video),
        ("share", share),
    ):
        if value is not None:
            data[key] = value
    if reusable:
        data["reusable"] = True
    problems: list[Problem] = []
    if quick_replies:
        parsed = []
        for i, spec in enumerate(quick_replies):
            title, sep, payload = spec.partition("=")
            if not sep:
                problems.append(
                    Problem("command line", "must be TITLE=PAYLOAD", None, f"--quick-reply[{i}]")
                )
            parsed.append({"title": title, "payload": payload})
        data["quick_replies"] = parsed
    if problems:
        raise InvalidInput(problems)
    return parse_message(data, source="command line")


__all__ = [
    "Attachment",
    "ButtonTemplate",
    "Content",
    "GenericTemplate",
    "MediaShare",
    "MessageKind",
    "OutboundMessage",
    "Text",
    "message_from_flags",
    "parse_message",
    "render_content",
    "url_problem",
]
