"""Signing keys: the ones anyone could guess, refused wherever a key comes from (app.config),
and the key file a service generates once for its workers to share (SECRET_KEY_FILE)."""

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

# Values people copy from examples and documentation; no deployment may run with one of them,
# however it is padded to pass the length check. Compared lower-cased, letters and digits only.
PLACEHOLDER_SECRETS = (
    "changeme",
    "change-me",
    "changethis",
    "secret",
    "your-secret-key",
    # docker-compose.yml's "SECRET_KEY=<python3 -c ...>", pasted as it stands
    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
)
MIN_SECRET_BYTES = 32
MIN_SECRET_DISTINCT_CHARACTERS = 12


class WeakSecretKey(ValueError):
    """A signing key anyone could guess or read: the service refuses to start with it."""


def _letters_and_digits(text: str) -> str:
    return "".join(character for character in text.lower() if character.isalnum())


_PLACEHOLDERS = sorted({_letters_and_digits(p) for p in PLACEHOLDER_SECRETS}, key=len, reverse=True)


def is_placeholder(key: str) -> bool:
    """A placeholder padded to any length: the key begins or ends with one, or is placeholders
    and padding of fewer than 12 other different characters ("changeme" * 4, "changeme-0123...").
    A key that only happens to contain one ("test-secret-key-for-ci-...") is not."""
    text = _letters_and_digits(key)
    found = [p for p in _PLACEHOLDERS if p in text]
    if not found:
        return False
    if any(text.startswith(p) or text.endswith(p) for p in found):
        return True
    for placeholder in found:
        text = text.replace(placeholder, "")
    return len(set(text)) < MIN_SECRET_DISTINCT_CHARACTERS


def check_key_strength(key: str, source: str) -> None:
    """Refuse an empty, short, repetitive or placeholder signing key (the message never
    repeats it). The placeholder check comes first: a short placeholder gets its own message."""
    if is_placeholder(key):
        raise WeakSecretKey(f"{source} is a placeholder value; generate a random one")
    if len(key.encode()) < MIN_SECRET_BYTES:
        raise WeakSecretKey(f"{source} must be at least {MIN_SECRET_BYTES} bytes")
    if len(set(key)) < MIN_SECRET_DISTINCT_CHARACTERS:
        # "0" * 32 passed a length-only check; a random key of 32 characters from any
        # alphabet of 64 has 12 or more different ones but for a chance under 1e-12.
        raise WeakSecretKey(
            f"{source} must have at least {MIN_SECRET_DISTINCT_CHARACTERS} different characters"
            " (generate one: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )


def check_private(path: Path, source: str) -> None:
    # Whoever can read the key can sign tokens as anyone: in production it is the service's
    # alone (an operator's own file too: chmod 600 or 400).
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise WeakSecretKey(f"{source} must not be readable by group or others (mode {mode:o})")


def shared_key(path: Path) -> str:
    """The key in `path`; if there is none, a new random one, written there first."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    # Write a complete file under a temporary name, then link it into place: link fails if
    # another worker won the race, and nobody can ever read a half-written key.
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_text().strip()
