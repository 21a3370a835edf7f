"""Encryption at rest: what every store seals before it writes, with rotating Fernet keys.

TOKEN_ENCRYPTION_KEY lists Fernet keys, comma-separated, newest first (the app config
holds them as TOKEN_ENCRYPTION_KEYS). Every key can open, only the newest seals: to
rotate, put a new key first, run `flask --app app vcita reseal` (it seals again, with the
new key, every value an older key sealed: `app/storage/resealing.py`), and drop the old
key once it reports that nothing is left under an older key. A connection's token is
also sealed again the first time it is read; nothing else is, until that command runs.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

__all__ = ["InvalidToken", "Sealer", "get_sealer"]


class Sealer:
    """Seal text with the newest key; open what any of the keys sealed."""

    def __init__(self, keys: list[str]) -> None:
        fernets = [Fernet(key) for key in keys]
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)
        # The keys after the newest, which only ever open: None with a single key.
        self._older = MultiFernet(fernets[1:]) if len(fernets) > 1 else None

    def seal(self, plaintext: str) -> str:
        """Return `plaintext` encrypted and authenticated with the newest key."""
        return self._newest.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """Return what `sealed` holds; raise InvalidToken if no key opens it."""
        return self._all.decrypt(sealed.encode()).decode()

    def open_and_reseal(self, sealed: str) -> tuple[str, str | None]:
        """Return what `sealed` holds, and its resealing if an older key had sealed it.

        Raise InvalidToken if no key opens it. The newest key is tried first, so the
        common case costs one decryption; an older key's costs one more, and a sealing.
        """
        try:
            return self._newest.decrypt(sealed.encode()).decode(), None
        except InvalidToken:
            if self._older is None:
                raise
        plaintext = self._older.decrypt(sealed.encode())
        return plaintext.decode(), self._newest.encrypt(plaintext).decode()

    def reseal(self, sealed: str) -> str | None:
        """Return `sealed` sealed again with the newest key, or None if it already is.

        Raise InvalidToken if no key opens it.
        """
        return self.open_and_reseal(sealed)[1]


def get_sealer() -> Sealer:
    """Return the current app's sealer."""
    return current_app.extensions["sealer"]
