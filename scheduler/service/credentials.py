"""Which token an account's calls carry: the configured one, or the refreshed one the database
holds (encrypted) — read at every step, so a token one daemon refreshed is used by every
replica at once (README "Running it for months")."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from scheduler.config import (
    MIN_GOOD_SECRET_CHARS,
    AccountSettings,
    SecretMissing,
    Settings,
    TokenMissing,
)
from scheduler.redaction import remember_secret
from scheduler.service.secrets import KeyFileError, TokenCipher, WrongKey, load_cipher
from scheduler.service.tokens import Flavour, choose_token, flavour
from scheduler.store import Store, TokenState


def configured_tokens(settings: Settings) -> list[str]:
    """The tokens the configuration holds now (unreadable ones are reported elsewhere)."""
    out = []
    for acct in settings.accounts:
        try:
            out.append(acct.token())
        except TokenMissing:
            continue
    return out


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret the configuration names that can be read now: the tokens, the webhook
    receiver's app secret and verify token, forwarding and notification signing keys. Read
    so that redaction knows them before any text quotes one (a queue file that writes a
    token where an account name goes is refused with a message that must not show it)."""
    out = configured_tokens(settings)
    hooks = settings.webhooks
    readers: list[Callable[[], str | bytes | None]] = []
    if hooks.app_secret_env is not None or hooks.app_secret_file is not None:
        readers.append(hooks.app_secret)
    if hooks.verify_token_env is not None or hooks.verify_token_file is not None:
        readers.append(hooks.verify_token)
    readers += [target.secret for target in hooks.forward]
    readers += [target.secret for target in settings.notify]
    for read in readers:
        try:
            value = read()
        except (SecretMissing, TokenMissing):
            continue  # reported where it is used
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        # a short secret chosen by hand (a verify token "test") would cut that word out of
        # every message: such a one is warned about when the daemon starts (startup_problems)
        if text and len(text) >= MIN_GOOD_SECRET_CHARS:
            out.append(text)
    return out


class TokenProvider:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.kind = flavour(settings.graph.base_url, settings.graph.login)
        self._cipher: TokenCipher | None = None
        self._lock = threading.Lock()
        self._plain: dict[str, str] = {}  # ciphertext → token: decrypt each one once

    @property
    def refreshes(self) -> bool:
        """Instagram Login tokens expire and are refreshed; Facebook Login Page tokens not."""
        return self.kind is Flavour.INSTAGRAM_LOGIN

    def cipher(self) -> TokenCipher:
        """The key file's cipher, loaded (or created, without secrets.key_file) on first use.
        Raises KeyFileError naming the file."""
        with self._lock:
            if self._cipher is None:
                self._cipher = load_cipher(self.settings.secrets.key_file, self.settings.database.url)
            return self._cipher

    async def token(self, acct: AccountSettings) -> str:
        """The token to call with (raises TokenMissing, naming the account and what to do)."""
        configured = acct.token()
        if not self.refreshes:
            return configured
        state = await asyncio.to_thread(self.store.token_state, acct.name)
        return await asyncio.to_thread(self.pick, acct, configured, state)

    def pick(self, acct: AccountSettings, configured: str, state: TokenState | None) -> str:
        """Blocking: may decrypt (and load the key file the first time)."""
        if state is None or state.refreshed_token is None:
            return configured
        if choose_token(configured, state.seeded_fingerprint, True) == "config":
            return configured  # a new login: it wins over what an old one refreshed to
        return self.decrypt(acct.name, state.refreshed_token)

    def decrypt(self, account: str, ciphertext: str) -> str:
        known = self._plain.get(ciphertext)
        if known is not None:
            return known
        try:
            token = self.cipher().decrypt(ciphertext, f"the refreshed token of account {account}")
        except (KeyFileError, WrongKey) as e:
            raise TokenMissing(f"account {account}: {e}") from None
        remember_secret(token)  # cut from every later log line and stored error text
        self._plain[ciphertext] = token  # one per refresh: a handful a year
        return token

    def remember_stored(self) -> int:
        """Note every stored refreshed token as a secret (at daemon start: redaction knows them
        before any line is logged). Returns how many; unreadable ones are left to `token`."""
        n = 0
        for state in self.store.token_states():
            if state.refreshed_token is not None:
                try:
                    self.decrypt(state.account, state.refreshed_token)
                    n += 1
                except TokenMissing:
                    continue
        return n
