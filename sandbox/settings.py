"""Read and validate the sandbox's settings, from the environment or a test's overrides.

`load_settings` returns the Flask config mapping or raises `SandboxConfigError` naming
every bad variable at once. Tests pass the same keys in `test_config`, as strings or as
Python values (`True`, `0.2`, a list of redirect URIs).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .directory import Business, Directory, load_directory

DEFAULT_CLIENT_ID = "vcita-connect-sandbox"
# Public demo credential: it only ever unlocks this local emulator.
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105
DEFAULT_REDIRECT_URIS = "http://localhost:5000/callback"
# vcita: "The code is valid for only 30 seconds" (guide, step 2).
DEFAULT_CODE_LIFETIME = 30.0
DEFAULT_APP_NAME = "vcita Connect"
DEFAULT_BUSINESSES_FILE = Path(__file__).with_name("demo_businesses.json")
# vcita's white-label partner domain in the demo data. Tests and `make run` use
# myclients.localhost: browsers resolve every *.localhost name to this machine.
DEFAULT_BRAND_DOMAIN = "myclients.me"
# Ten seconds: farther than any real client would wait out a handshake.
MAX_RTT_MS = 10_000

SETTING_NAMES = (
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_CLIENT_JWKS_URI",
    "SANDBOX_REDIRECT_URIS",
    "SANDBOX_TRUSTED",
    "SANDBOX_REUSE_ACCESS_TOKEN",
    "SANDBOX_CODE_LIFETIME",
    "SANDBOX_SECRET_KEY",
    "SANDBOX_BUSINESSES_FILE",
    "SANDBOX_ISSUER",
    "SANDBOX_CONTROL",
    "SANDBOX_APP_NAME",
    "SANDBOX_APP_URL",
    "SANDBOX_BRAND_DOMAIN",
    "SANDBOX_RTT_MS",
)

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
BRAND_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# A landing page's host as urlsplit gives it: a DNS name, an IPv4 or an IPv6 address.
URL_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+", re.IGNORECASE)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class SandboxConfigError(ValueError):
    """One or more sandbox settings are missing or malformed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid vcita sandbox settings:\n- " + "\n- ".join(problems))


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the validated settings, from the environment overlaid with overrides."""
    source: dict[str, Any] = {
        name: value
        for name, value in (os.environ if environ is None else environ).items()
        if name in SETTING_NAMES
    }
    for name, value in (overrides or {}).items():
        # An override of None unsets the variable: the default applies.
        if value is None:
            source.pop(name, None)
        else:
            source[name] = value
    problems: list[str] = []
    businesses_file = Path(source.get("SANDBOX_BUSINESSES_FILE") or DEFAULT_BUSINESSES_FILE)
    settings = {
        "SANDBOX_CLIENT_ID": _text(source, "SANDBOX_CLIENT_ID", DEFAULT_CLIENT_ID, problems),
        "SANDBOX_CLIENT_SECRET": _text(
            source, "SANDBOX_CLIENT_SECRET", DEFAULT_CLIENT_SECRET, problems
        ),
        "SANDBOX_CLIENT_JWKS_URI": _client_jwks_uri(source, problems),
        "SANDBOX_REDIRECT_URIS": _redirect_uris(source, problems),
        "SANDBOX_TRUSTED": _flag(source, "SANDBOX_TRUSTED", problems),
        # Doorkeeper's reuse_access_token. vcita's example cannot tell whether vcita turns
        # it on; on, a client meets the harder case: a reconnect gets an old token back.
        "SANDBOX_REUSE_ACCESS_TOKEN": _flag(
            source, "SANDBOX_REUSE_ACCESS_TOKEN", problems, default=True
        ),
        "SANDBOX_CODE_LIFETIME": _lifetime(source, problems),
        "SANDBOX_SECRET_KEY": _text(source, "SANDBOX_SECRET_KEY", secrets.token_hex(32), problems),
        "SANDBOX_BUSINESSES_FILE": businesses_file,
        "SANDBOX_DIRECTORY": _directory(businesses_file, problems),
        "SANDBOX_ISSUER": _issuer(source, problems),
        "SANDBOX_CONTROL": _flag(source, "SANDBOX_CONTROL", problems),
        "SANDBOX_APP_NAME": _text(source, "SANDBOX_APP_NAME", DEFAULT_APP_NAME, problems),
        "SANDBOX_APP_URL": _app_url(source, problems),
        "SANDBOX_BRAND_DOMAIN": _brand_domain(source, problems),
        "SANDBOX_RTT_MS": _rtt_ms(source, problems),
    }
    if problems:
        raise SandboxConfigError(problems)
    return settings


def _text(source: Mapping[str, Any], name: str, default: str, problems: list[str]) -> str:
    value = source.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value != value.strip():
        problems.append(f"{name} must be text without surrounding spaces")
        return default
    return value


def _flag(
    source: Mapping[str, Any], name: str, problems: list[str], default: bool = False
) -> bool:
    value = source.get(name)
    if isinstance(value, bool):
        return value
    word = "" if value is None else str(value).strip().lower()
    if word == "":  # unset, as `NAME=` in .env leaves it
        return default
    if word in TRUE_WORDS:
        return True
    if word not in FALSE_WORDS:
        problems.append(f"{name} must be true or false, not {value!r}")
        return default
    return False


def _lifetime(source: Mapping[str, Any], problems: list[str]) -> float:
    value = source.get("SANDBOX_CODE_LIFETIME", DEFAULT_CODE_LIFETIME)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        problems.append(
            f"SANDBOX_CODE_LIFETIME must be a positive number of seconds, not {value!r}"
        )
        return DEFAULT_CODE_LIFETIME
    return seconds


def _rtt_ms(source: Mapping[str, Any], problems: list[str]) -> int:
    value = source.get("SANDBOX_RTT_MS") or 0
    text = str(value).strip()
    # ASCII digits only: "²".isdigit() is true, and int() refuses it.
    whole = not isinstance(value, bool) and text.isascii() and text.isdigit()
    if not whole or int(text) > MAX_RTT_MS:
        problems.append(
            "SANDBOX_RTT_MS must be a whole number of milliseconds from 0 (vcita on this machine)"
            f" to {MAX_RTT_MS}, not {value!r}"
        )
        return 0
    return int(text)


def _redirect_uris(source: Mapping[str, Any], problems: list[str]) -> tuple[str, ...]:
    value = source.get("SANDBOX_REDIRECT_URIS") or DEFAULT_REDIRECT_URIS
    uris = tuple(value.split() if isinstance(value, str) else value)
    bad = [uri for uri in uris if not _is_registrable_redirect_uri(uri)]
    if not uris or bad:
        # RFC 6749 §3.1.2: an absolute URI, without a fragment.
        problems.append(
            "SANDBOX_REDIRECT_URIS must list absolute ASCII URIs without a #fragment, separated by"
            f" spaces; bad: {', '.join(map(repr, bad)) or 'none given'}"
        )
    return uris


def _is_registrable_redirect_uri(uri: object) -> bool:
    # Sent back verbatim in a Location header, so plain printable ASCII (RFC 3986 §2).
    if not isinstance(uri, str) or not uri.isascii() or not uri.isprintable() or " " in uri:
        return False
    parts = urlsplit(uri)
    if "#" in uri or not parts.scheme:
        return False
    return bool(parts.netloc) if parts.scheme in ("http", "https") else bool(parts.path)


def _directory(path: Path, problems: list[str]) -> Directory | None:
    try:
        return load_directory(path)
    except ValueError as error:
        problems.append(f"SANDBOX_BUSINESSES_FILE {str(path)!r}: {error}")
        return None


def _issuer(source: Mapping[str, Any], problems: list[str]) -> str | None:
    value = source.get("SANDBOX_ISSUER") or None
    if value is None:
        return None
    parts = urlsplit(str(value))
    # RFC 9207 §2 / RFC 8414 §2: an https URL (http on this local emulator) without
    # query or fragment.
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        problems.append(
            f"SANDBOX_ISSUER must be an http(s) URL without query or fragment, not {value!r}"
        )
        return None
    return str(value)


def _client_jwks_uri(source: Mapping[str, Any], problems: list[str]) -> str | None:
    value = source.get("SANDBOX_CLIENT_JWKS_URI") or None
    if value is None:
        return None
    if not isinstance(value, str) or not is_plain_http_url(value):
        problems.append(
            "SANDBOX_CLIENT_JWKS_URI must be the URL of the client's JWK Set (vcita's"
            " client_auth_jwks_uri), an absolute http(s) URL without user or #fragment, such as"
            f" http://localhost:5000/.well-known/jwks.json, not {value!r}"
        )
        return None
    return value


def _app_url(source: Mapping[str, Any], problems: list[str]) -> str | None:
    value = source.get("SANDBOX_APP_URL") or None
    if value is None:
        return None
    if not isinstance(value, str) or not is_plain_http_url(value):
        problems.append(
            "SANDBOX_APP_URL must be the app's landing page, an absolute http(s) URL without"
            f" user or #fragment, such as http://localhost:5000/, not {value!r}"
        )
        return None
    return value


def is_plain_http_url(url: str) -> bool:
    # The shell puts the landing page in an iframe's src and its origin in a CSP header,
    # and the sandbox fetches the JWK Set from its URL: plain printable ASCII and a host
    # that is a name or an address, nothing else.
    if not url.isascii() or not url.isprintable() or " " in url or "#" in url:
        return False
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and "@" not in parts.netloc
        and not parts.netloc.endswith(":")
        and bool(URL_HOST.fullmatch(parts.hostname or ""))
    )


def _brand_domain(source: Mapping[str, Any], problems: list[str]) -> str:
    value = source.get("SANDBOX_BRAND_DOMAIN") or DEFAULT_BRAND_DOMAIN
    if not isinstance(value, str) or len(value) > 253 or not BRAND_DOMAIN.fullmatch(value):
        problems.append(
            "SANDBOX_BRAND_DOMAIN must be a lower-case DNS name (labels of a-z, 0-9 and -,"
            f" no trailing dot) such as {DEFAULT_BRAND_DOMAIN}, not {value!r}"
        )
        return DEFAULT_BRAND_DOMAIN
    return value


def brand_host_of(business: Business, domain: str) -> str:
    """Return the business's white-label host under `domain`, keeping its own first label.

    The demo data has vcita's partner domain (myclients.me); under myclients.localhost
    the same host reaches this machine in a browser, so the sandbox can answer on it.
    """
    return f"{business.brand_host.partition('.')[0]}.{domain}"


def client_auth_for_display(config: Mapping[str, Any]) -> str:
    """Say how the registered client authenticates its token requests."""
    if config["SANDBOX_CLIENT_JWKS_URI"]:
        return (
            "private_key_jwt, with keys from SANDBOX_CLIENT_JWKS_URI"
            f" {config['SANDBOX_CLIENT_JWKS_URI']} (a client_secret is refused)"
        )
    return "client_secret (JSON, form or HTTP Basic)"


def secret_for_display(secret: str) -> str:
    """Show the public demo secret as is; never show one that was configured."""
    if secret == DEFAULT_CLIENT_SECRET:
        return f"{secret} (the public demo secret)"
    return "set by SANDBOX_CLIENT_SECRET (not shown)"
