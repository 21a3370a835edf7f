"""Encryption at rest: what every store seals before it writes, with rotating Fernet keys.

TOKEN_ENCRYPTION_KEY lists Fernet keys, comma-separated, newest first (the app config
holds them as TOKEN_ENCRYPTION_KEYS). Every key can open, only the newest seals: to
rotate, put a new key first, and drop the old one once what it sealed has been sealed
again (tokens are, the first time they are read).
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

    def seal(self, plaintext: str) -> str:
        """Return `plaintext` encrypted and authenticated with the newest key."""
        return self._newest.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """Return what `sealed` holds; raise InvalidToken if no key opens it."""
        return self._all.decrypt(sealed.encode()).decode()

    def open_and_reseal(self, sealed: str) -> tuple[str, str | None]:
        """Return what `sealed` holds, and its resealing if an older key had sealed it.

        Raise InvalidToken if no key opens it. The newest key is tried first, so the
        common case costs one decryption.
        """
        try:
            return self._newest.decrypt(sealed.encode()).decode(), None
        except InvalidToken:
            pass
        resealed = self._all.rotate(sealed.encode())
        return self._newest.decrypt(resealed).decode(), resealed.decode()


def get_sealer() -> Sealer:
    """Return the current app's sealer."""
    return current_app.extensions["sealer"]
