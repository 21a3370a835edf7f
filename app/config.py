"""Read and validate every setting, from the environment, in one place.

`load_config` returns the Flask config mapping or raises `ConfigError` naming every
missing or malformed variable at once, so an operator fixes them in one go. Settings
that run but may not do what was meant are named in SETTINGS_WARNINGS, which the app
logs at start-up.
`.env.example` documents each variable read here; a test keeps the two in sync.
"""

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import fields
from itertools import pairwise
from pathlib import Path
from typing import Any, AnyStr
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import vcita
from .signing_keys import UnusableKey, read_private_key_file
from .storage.database import DEFAULT_DATABASE_FILE, SUPPORTED_BACKENDS

APP_ENVS = ("development", "production")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
MIN_PRODUCTION_SECRET_BYTES = 32
SANDBOX_HINT = " (or run `make run`, which serves the app on the built-in sandbox)"
# A key a person typed ("a" * 32, "0123456789abcdef" * 2) has too little variety to be
# secret; generated ones always have plenty. Thresholds a generated key never misses:
MIN_SECRET_KEY_DISTINCT_CHARACTERS = 10
MIN_FERNET_KEY_DISTINCT_BYTES = 16
MAX_TRUSTED_PROXIES = 10
# Where vcita's own UI shows installed apps in its frame.
VCITA_APP_ORIGIN = "https://app.vcita.com"
# A CSP host-source naming one origin: scheme://host[:port], the host maybe "*.domain".
ORIGIN = re.compile(r"https?://(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:[0-9]{1,5})?")
SECRET_KEY_COMMAND = "python -c 'import secrets; print(secrets.token_hex(32))'"  # noqa: S105
FERNET_KEY_COMMAND = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


# gunicorn's "App failed to load" exit code: a worker exiting with it stops gunicorn
# instead of being restarted in a loop.
EXIT_CONFIG_ERROR = 4


class ConfigError(SystemExit):
    """The settings cannot run the app; the message names every problem.

    A SystemExit, so that `flask run` and gunicorn stop with the message instead
    of a traceback (create_app prints it).
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"vcita Connect cannot start. Fix these settings (see .env.example):\n{lines}"
        )
        self.code = EXIT_CONFIG_ERROR


def load_config(environ: Mapping[str, str], instance_path: str) -> dict[str, Any]:
    """Return the app's settings read from `environ`, or raise ConfigError."""
    reader = _Reader(environ)
    app_env = reader.choice("APP_ENV", APP_ENVS, default="development")
    auth_method = reader.choice(
        "VCITA_TOKEN_AUTH_METHOD", vcita.TOKEN_AUTH_METHODS, default="client_secret_json"
    )
    signs = auth_method == vcita.PRIVATE_KEY_JWT
    brand_hosts = reader.host_patterns("VCITA_BRAND_HOSTS")
    config: dict[str, Any] = {
        "APP_ENV": app_env,
        "VCITA_TOKEN_AUTH_METHOD": auth_method,
        # With private_key_jwt no secret is needed, nor ever sent; the keys are.
        "VCITA_CLIENT_SECRET": (reader.text("VCITA_CLIENT_SECRET") or None)
        if signs
        else reader.required("VCITA_CLIENT_SECRET"),
        "VCITA_CLIENT_PRIVATE_KEYS": reader.private_keys(
            "VCITA_CLIENT_PRIVATE_KEYS", required=signs, production=app_env == "production"
        ),
        # Only what the pages say and show (a banner, the flow trace): the sandbox's
        # URLs and demo client are settings like any other, which `make run` sets.
        "SANDBOX": reader.flag("VCITA_SANDBOX"),
        "VCITA_CLIENT_ID": reader.required("VCITA_CLIENT_ID"),
        "VCITA_REDIRECT_URI": reader.url("VCITA_REDIRECT_URI", default=None),
        "VCITA_AUTHORIZE_URL": reader.url("VCITA_AUTHORIZE_URL", default=vcita.AUTHORIZE_URL),
        "VCITA_TOKEN_URL": reader.url("VCITA_TOKEN_URL", default=vcita.TOKEN_URL),
        "VCITA_USERINFO_URL": reader.url("VCITA_USERINFO_URL", default=vcita.USERINFO_URL),
        "VCITA_API_URL": reader.url("VCITA_API_URL", default=vcita.API_URL),
        # Where vcita can reach this app (webhooks); unset: no webhook subscription.
        "PUBLIC_BASE_URL": reader.optional_url("PUBLIC_BASE_URL"),
        "VCITA_SCOPE": reader.text("VCITA_SCOPE") or None,
        "VCITA_USE_PKCE": reader.flag("VCITA_USE_PKCE"),
        "VCITA_ISSUER": reader.text("VCITA_ISSUER") or None,
        "VCITA_BRAND_HOSTS": brand_hosts,
        "VCITA_BRAND_AUTHORIZE_URL": reader.brand_url_template(
            "VCITA_BRAND_AUTHORIZE_URL", default=vcita.BRAND_AUTHORIZE_URL
        ),
        "DATABASE_URL": reader.database_url(
            "DATABASE_URL", default=f"sqlite:///{Path(instance_path) / DEFAULT_DATABASE_FILE}"
        ),
        "TRUSTED_PROXY_COUNT": reader.count("TRUSTED_PROXY_COUNT", maximum=MAX_TRUSTED_PROXIES),
        "SHOW_FLOW_TRACE": reader.flag("SHOW_FLOW_TRACE"),
    }
    # vcita's own pages, and its white-label partners' pages, show the app in a frame.
    # Only exact brand hosts by default: a wildcard would let any page on any host under
    # it frame the app, so it is the operator's own choice (docs/app-market.md).
    exact_hosts = [host for host in brand_hosts if not host.startswith("*.")]
    frame_ancestors = reader.origins(
        "VCITA_FRAME_ANCESTORS",
        default=(VCITA_APP_ORIGIN, *(f"https://{host}" for host in exact_hosts)),
    )
    config["VCITA_FRAME_ANCESTORS"] = frame_ancestors
    config["SETTINGS_WARNINGS"] = _frame_ancestors_warnings(brand_hosts, frame_ancestors, reader)
    secret_key = reader.text("SECRET_KEY")
    encryption_keys = reader.fernet_keys("TOKEN_ENCRYPTION_KEY")
    if not secret_key:
        reader.missing(
            "SECRET_KEY", f"SECRET_KEY is not set: generate one with `{SECRET_KEY_COMMAND}`"
        )
    if not encryption_keys:
        reader.missing(
            "TOKEN_ENCRYPTION_KEY",
            f"TOKEN_ENCRYPTION_KEY is not set: generate one with `{FERNET_KEY_COMMAND}`",
        )
    config["SECRET_KEY"] = secret_key
    config["TOKEN_ENCRYPTION_KEYS"] = encryption_keys

    config.update(_cookie_settings(production=app_env == "production"))

    if app_env == "production":
        _check_production(config, environ, reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    config["VCITA"] = vcita_settings(config)
    return config


def vcita_settings(config: Mapping) -> vcita.VcitaSettings:
    """Build the client's settings from the variables that set them, VCITA_<FIELD>.

    The timeouts are not settings of the app: the client's defaults apply.
    """
    names = {field.name: f"VCITA_{field.name.upper()}" for field in fields(vcita.VcitaSettings)}
    names["private_keys"] = "VCITA_CLIENT_PRIVATE_KEYS"  # a list of key files, read as keys
    return vcita.VcitaSettings(
        **{field: config[name] for field, name in names.items() if name in config}
    )


def _frame_ancestors_warnings(
    brand_hosts: tuple[str, ...], frame_ancestors: tuple[str, ...], reader: "_Reader"
) -> tuple[str, ...]:
    """Say what to set when wildcard brand hosts are listed but frame ancestors are not."""
    wildcards = [host for host in brand_hosts if host.startswith("*.")]
    if not wildcards or reader.text("VCITA_FRAME_ANCESTORS"):
        return ()
    wider = [*frame_ancestors, *(f"https://{host}" for host in wildcards)]
    return (
        "VCITA_FRAME_ANCESTORS is unset, so no page on the wildcard brand hosts "
        f"({' '.join(wildcards)}) can show the app in a frame: a wildcard frames the app "
        "only when you list it. If vcita shows the app there, set "
        f'VCITA_FRAME_ANCESTORS="{" ".join(wider)}", after reading in docs/app-market.md '
        "what it allows: any page on any host under the wildcard can then frame the app.",
    )


def _cookie_settings(production: bool) -> dict:
    """Session cookie flags: HttpOnly always, Secure and __Host- in production.

    SameSite=Lax, not Strict: vcita sends the person back with a cross-site
    redirect, and a Strict cookie would not come along, losing the pending state.
    """
    return {
        "SESSION_COOKIE_NAME": "__Host-vcita_connect" if production else "vcita_connect",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_PATH": "/",  # required by the __Host- prefix
        # Only /disconnect takes a body, and it is one small form field.
        "MAX_CONTENT_LENGTH": 64 * 1024,
    }


def _check_production(config: dict, environ: Mapping[str, str], reader: "_Reader") -> None:
    """Refuse settings that are tolerable on a laptop but unsafe in production."""
    if config["SANDBOX"]:
        reader.problem("VCITA_SANDBOX must be off when APP_ENV=production")
    for name in (
        "VCITA_AUTHORIZE_URL",
        "VCITA_TOKEN_URL",
        "VCITA_USERINFO_URL",
        "VCITA_API_URL",
        "VCITA_REDIRECT_URI",
        "PUBLIC_BASE_URL",
    ):
        url = config[name]
        if url and urlsplit(url).scheme == "http" and not _is_loopback(url):
            reader.problem(f"{name} must use https:// when APP_ENV=production")
    template = config["VCITA_BRAND_AUTHORIZE_URL"]
    if template and not template.startswith("https://"):
        reader.problem("VCITA_BRAND_AUTHORIZE_URL must use https:// when APP_ENV=production")
    for origin in config["VCITA_FRAME_ANCESTORS"]:
        if origin.startswith("http://") and not _is_loopback(origin.replace("*.", "", 1)):
            reader.problem(
                f"VCITA_FRAME_ANCESTORS must name https:// origins when APP_ENV=production, "
                f"not {origin!r}"
            )
    secret_key = config["SECRET_KEY"]
    if secret_key and len(secret_key.encode()) < MIN_PRODUCTION_SECRET_BYTES:
        reader.problem(
            f"SECRET_KEY must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes when "
            "APP_ENV=production"
        )
    elif secret_key and _too_little_variety(secret_key, MIN_SECRET_KEY_DISTINCT_CHARACTERS):
        reader.problem(
            "SECRET_KEY has too little variety to be secret (repeated or patterned "
            f"characters): generate one with `{SECRET_KEY_COMMAND}`"
        )
    for position, key in enumerate(config["TOKEN_ENCRYPTION_KEYS"], start=1):
        raw = base64.urlsafe_b64decode(key)
        if _too_little_variety(raw, MIN_FERNET_KEY_DISTINCT_BYTES):
            reader.problem(
                f"TOKEN_ENCRYPTION_KEY key #{position} has too little variety to be secret "
                f"(repeated or patterned bytes): generate one with `{FERNET_KEY_COMMAND}`"
            )
    if config["SHOW_FLOW_TRACE"]:
        # The trace is for a developer watching the wire, not for every business that
        # connects; in production, read the logs instead.
        reader.problem("SHOW_FLOW_TRACE must be off when APP_ENV=production")
    for name in ("AUTHLIB_INSECURE_TRANSPORT", "OAUTHLIB_INSECURE_TRANSPORT"):
        # Either switch lets OAuth libraries talk to vcita over plain HTTP.
        if name in environ:
            reader.problem(f"{name} must not be set when APP_ENV=production")


def _too_little_variety(key: AnyStr, minimum_distinct: int) -> bool:
    """Say whether a key is obviously not random: few symbols, few steps, or a unit repeated.

    A run such as "abcdefghijklmnopqrstuvwxyz012345" has many symbols but one step between
    neighbours; `key in (key + key)[1:-1]` holds exactly when the key is a shorter unit
    repeated ("abab…"). A key made by `secrets` or Fernet.generate_key() never fails.
    """
    symbols = [ord(character) for character in key] if isinstance(key, str) else list(key)
    steps = {after - before for before, after in pairwise(symbols)}
    return (
        len(set(symbols)) < minimum_distinct
        or len(steps) < minimum_distinct
        or key in (key + key)[1:-1]
    )


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Reader:
    """Read typed values from the environment, collecting every problem found."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[str] = []
        self.reported: set[str] = set()

    def problem(self, message: str, name: str | None = None) -> None:
        self.problems.append(message)
        if name:
            self.reported.add(name)

    def missing(self, name: str, message: str) -> None:
        """Say that `name` is not set, unless its value was already refused."""
        if name not in self.reported:
            self.problem(message, name)

    def text(self, name: str) -> str:
        value = self.environ.get(name, "").strip()
        try:
            value.encode()
        except UnicodeEncodeError:
            # os.environ keeps bytes that are not UTF-8 as lone surrogates ("\udcff"),
            # which any later use of the value (a signature, a URL) would choke on.
            self.problem(f"{name} is not valid UTF-8 text", name)
            return ""
        return value

    def flag(self, name: str) -> bool:
        value = self.text(name).lower()
        if value in TRUE_WORDS:
            return True
        if value not in FALSE_WORDS:
            self.problem(f"{name} must be true or false, not {value!r}", name)
        return False

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in choices:
            self.problem(f"{name} must be one of {', '.join(choices)}, not {value!r}", name)
            return default
        return value

    def count(self, name: str, maximum: int) -> int:
        value = self.text(name) or "0"
        # ASCII digits only: "²".isdigit() is true, and int() refuses it.
        digits = value.isascii() and value.isdigit() and len(value) <= len(str(maximum))
        if not digits or int(value) > maximum:
            self.problem(f"{name} must be a whole number from 0 to {maximum}, not {value!r}", name)
            return 0
        return int(value)

    def required(self, name: str) -> str | None:
        value = self.text(name)
        if not value:
            self.missing(name, f"{name} is not set{SANDBOX_HINT}")
        return value or None

    def private_keys(self, name: str, required: bool, production: bool) -> tuple[dict, ...]:
        """Read private key files (PEM or JWK), newest first, separated by commas."""
        paths = [item.strip() for item in self.text(name).split(",") if item.strip()]
        if required and not paths:
            self.missing(
                name,
                f"{name} is not set: private_key_jwt signs with it "
                "(make one with `flask --app app vcita new-key`)",
            )
        keys = []
        for path in paths:
            # Only the path is named, never what the file holds: it may be a key.
            try:
                key, mode = read_private_key_file(path)
            except OSError as error:
                self.problem(f"{name}: cannot read {path!r} ({error.strerror})", name)
                continue
            except UnusableKey as error:
                self.problem(f"{name}: {path!r} {error}", name)
                continue
            if production and mode & 0o077:
                self.problem(
                    f"{name}: {path!r} is readable by others; run `chmod 600 {path}`", name
                )
            keys.append(key)
        return tuple(keys)

    def optional_url(self, name: str) -> str | None:
        """Read a URL that may be left unset; a trailing slash is dropped."""
        if not self.text(name):
            return None
        value = self.url(name, default=None)
        return value.rstrip("/") if value else None

    def url(self, name: str, default: str | None) -> str | None:
        value = self.text(name) or default
        if value is None:
            self.missing(name, f"{name} is not set{SANDBOX_HINT}")
            return None
        try:
            parts = urlsplit(value)
            well_formed = (
                parts.scheme in ("http", "https") and parts.hostname and not parts.fragment
            )
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:  # "http://[::1": an unclosed IPv6 literal
            well_formed = False
        if not well_formed:
            self.problem(f"{name} must be an absolute http(s) URL without a #fragment", name)
            return None
        return value

    def host_patterns(self, name: str) -> tuple[str, ...]:
        """Read host names, or `*.domain` patterns, separated by spaces or commas."""
        patterns = []
        for item in self.text(name).replace(",", " ").split():
            pattern = item.lower()
            host = pattern[2:] if pattern.startswith("*.") else pattern
            # The cheap bound first: no pattern runs over a value longer than a host name.
            if len(host) > vcita.MAX_HOST_NAME or not vcita.HOST_NAME.fullmatch(host):
                self.problem(
                    f"{name} must list host names or *.domain patterns "
                    f"(partner.example, *.partner.example), not {item!r}",
                    name,
                )
                continue
            patterns.append(pattern)
        return tuple(patterns)

    def brand_url_template(self, name: str, default: str) -> str | None:
        """Read a URL whose host is the `{brand_host}` placeholder."""
        template = self.text(name) or default
        example = "brand.example"
        filled = template.replace("{brand_host}", example)
        try:
            parts = urlsplit(filled)
            well_formed = (
                template.count("{brand_host}") == 1
                and parts.scheme in ("http", "https")
                and parts.hostname == example
                and not parts.username
                and not parts.fragment
                and "{" not in filled
            )
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            well_formed = False
        if not well_formed:
            self.problem(
                f"{name} must be an http(s) URL whose host is {{brand_host}}, like {default}",
                name,
            )
            return None
        return template

    def origins(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Read origins (scheme://host[:port], `*.` allowed) separated by spaces or commas."""
        value = self.text(name)
        if not value:
            return default
        origins = []
        for item in value.replace(",", " ").split():
            origin = item.lower().rstrip("/")
            if not ORIGIN.fullmatch(origin):
                self.problem(
                    f"{name} must list origins such as https://app.vcita.com or "
                    f"https://*.partner.example, not {item!r}",
                    name,
                )
                continue
            origins.append(origin)
        return tuple(origins)

    def database_url(self, name: str, default: str) -> str:
        value = self.text(name) or default
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            self.problem(f"{name} is not a valid SQLAlchemy database URL", name)
            return value
        if url.get_backend_name() not in SUPPORTED_BACKENDS:
            self.problem(
                f"{name} must name SQLite or PostgreSQL (sqlite:///… or "
                f"postgresql+psycopg://…), not {url.get_backend_name()!r}",
                name,
            )
            return value
        # Load the driver now: an unknown, missing or asyncio one would otherwise stop
        # the app with a traceback when it opens the database.
        try:
            dialect = url.get_dialect()
            dialect.import_dbapi()
        except ArgumentError:  # NoSuchModuleError: "postgresql+nosuchdriver://"
            self.problem(f"{name} names an unknown driver {url.drivername!r}", name)
        except ImportError as error:
            package = error.name or url.get_driver_name()
            self.problem(f"{name} needs {package!r}, which is not installed", name)
        else:
            if dialect.is_async:
                self.problem(f"{name} must use a synchronous driver, not {url.drivername!r}", name)
        return value

    def fernet_keys(self, name: str) -> list[str]:
        # Several keys, newest first, separated by commas: old rows stay readable
        # while they are re-encrypted with the newest key (key rotation).
        keys = [key.strip() for key in self.text(name).split(",") if key.strip()]
        valid = []
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError:
                self.problem(
                    f"{name} key #{position} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes)",
                    name,
                )
            else:
                valid.append(key)
        return valid
