"""The CSRF token of the sandbox's forms: one random value per session, sent back by each form.

A page of another site can post a form here, with the sandbox's cookie; it cannot read the
token on the sandbox's own page, so a post that carries it came from that page.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session


def csrf_token() -> str:
    """Return the session's CSRF token for the sandbox's forms, creating it once."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def posted_csrf_token_is_valid() -> bool:
    """Say whether the posted form carries this session's CSRF token (in constant time)."""
    expected = session.get("csrf_token")
    if not expected:
        return False
    sent = request.form.get("csrf_token", "")
    return hmac.compare_digest(sent.encode(), expected.encode())
