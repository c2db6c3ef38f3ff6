"""Encryption at rest for refreshed tokens: Fernet keys from a key file.

The key file holds one Fernet key per line (urlsafe base64 of 32 bytes; standard base64 as
`openssl rand -base64 32` prints it is accepted too). The first key encrypts; every key
decrypts, so a key can be rotated by putting the new one first. Without `secrets.key_file`,
igsched creates `igsched.key` in its state directory on first use: written to a private
temporary file and linked into place, so a reader never sees half a key and two daemons
starting at once end up with the same one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from scheduler.config import read_small_file

log = logging.getLogger(__name__)
MAX_KEY_FILE_BYTES = 64 * 1024  # a few keys of 44 characters, with comments

KEY_FILE_NAME = "igsched.key"


class KeyFileError(Exception):
    """The key file is missing, unreadable or malformed (the message names the file)."""


class WrongKey(Exception):
    """A stored secret does not decrypt with the key file's keys (names the file, never data)."""


def state_dir(database_url: str, environ: dict[str, str] | None = None) -> Path:
    """Where igsched keeps files of its own when no path is configured.

    systemd's StateDirectory= (exported as $STATE_DIRECTORY), else the SQLite database's
    directory, else $XDG_STATE_HOME/igsched (~/.local/state/igsched).
    """
    env = os.environ if environ is None else environ
    systemd_dirs = env.get("STATE_DIRECTORY", "")
    if systemd_dirs:
        return Path(systemd_dirs.split(":")[0])
    try:
        url = make_url(database_url)
    except Exception:  # a malformed URL is reported where the database is opened
        url = None
    if url is not None and url.get_backend_name() == "sqlite":
        db = url.database or ""
        if db and db != ":memory:" and not db.startswith("file:"):
            return Path(db).expanduser().resolve().parent
    xdg = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local/state")
    return Path(xdg) / "igsched"


def _parse_key(line: str) -> bytes | None:
    text = line.strip()
    for decode in (base64.urlsafe_b64decode, base64.standard_b64decode):
        try:
            raw = decode(text.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == 32:
            return base64.urlsafe_b64encode(raw)
    return None


class TokenCipher:
    """Encrypts and decrypts short secrets with the keys of one key file."""

    def __init__(self, keys: list[bytes], key_file: Path) -> None:
        if not keys:
            raise KeyFileError(f"key file {key_file} holds no key")
        self.key_file = key_file
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def __repr__(self) -> str:
        return f"TokenCipher(key_file={str(self.key_file)!r})"

    def encrypt(self, plaintext: str) -> str:
        """An ASCII ciphertext (Fernet token), safe to store in any text column."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, what: str = "a stored token") -> str:
        """The plaintext; WrongKey names `what` and the key file, never the data."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            raise WrongKey(
                f"cannot decrypt {what} with the key in {self.key_file}: it was encrypted with "
                "another key (daemons sharing a database need the same secrets.key_file) or "
                "the stored value is damaged"
            ) from None


def read_key_file(path: Path) -> TokenCipher:
    """Load a key file; every problem names the file and says what is wrong."""
    try:
        st = path.stat()
        raw = read_small_file(path, MAX_KEY_FILE_BYTES + 1)  # a FIFO or device: refused, never waited on
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"key file {path} is larger than a key file ({MAX_KEY_FILE_BYTES} bytes at most)")
        text = raw.decode("ascii")
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {path} is not a text file of base64 keys") from None
    if stat.S_IMODE(st.st_mode) & 0o007:
        log.warning("key file %s can be read by other users (mode %o); chmod 600 it",
                    path, stat.S_IMODE(st.st_mode))
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key = _parse_key(line)
        if key is None:
            raise KeyFileError(
                f"key file {path}, line {number}: not a key (base64 of 32 bytes, e.g. from "
                "`openssl rand -base64 32`)"
            )
        keys.append(key)
    return TokenCipher(keys, path)


def create_key_file(path: Path) -> bool:
    """Create `path` with a new key (mode 0600) unless it exists; True when this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if the file exists: never replaces a key
        except FileExistsError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_cipher(key_file: Path | None, database_url: str) -> TokenCipher:
    """The cipher for stored tokens.

    A configured key file must exist (a missing systemd credential must not silently become a
    new key that cannot read what is stored). Without one, the state directory's igsched.key
    is used, created on first use.
    """
    if key_file is not None:
        return read_key_file(key_file)
    path = state_dir(database_url) / KEY_FILE_NAME
    if not path.exists():
        try:
            made = create_key_file(path)
        except OSError as e:
            raise KeyFileError(f"cannot create key file {path}: {e.strerror}") from None
        if made:
            shared = not database_url.startswith("sqlite")
            log.warning("created key file %s for tokens stored encrypted; back it up%s", path,
                        ": every daemon sharing this database needs this key (secrets.key_file)"
                        if shared else ", or set secrets.key_file")
    return read_key_file(path)
