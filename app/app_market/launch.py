"""What vcita says when it opens the app from its App Market: hints, never proof.

vcita opens the app's landing page (its registered `redirect_uri`) inside a frame in its
own UI, or in a new tab, and appends the context it was opened in to the query string:
`business_uid`, `staff_uid`, `staff_role`, `language`, `brand_host`, `impersonate`,
`payment_permissions`, `package`. Nothing signs them, so anyone can open that URL with
other values. The app uses them only to choose among connections this browser already
made, to pick a white-label consent page from an allow-list, to set the page language,
and to say when the person approved with another business than the one vcita named.
"""

import logging
import re
from dataclasses import asdict, dataclass, fields

from flask import session
from werkzeug.datastructures import MultiDict

from ..session_keys import LAUNCH

logger = logging.getLogger(__name__)

# vcita's uids are short alphanumeric strings; anything else is not one of its uids.
UID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# staff_role, impersonate, payment_permissions, package: short words vcita chooses.
WORD = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# The App Market's locales, each with Babel's name for it (zh-SG is Simplified Chinese).
LANGUAGES = {
    "en": "en",
    "he": "he",
    "es": "es",
    "pl": "pl",
    "fr": "fr",
    "it": "it",
    "pt": "pt",
    "de": "de",
    "nl": "nl",
    "en-GB": "en_GB",
    "zh-SG": "zh_Hans_SG",
}
# Any spelling of a code, folded: "EN_gb" is en-GB, from a launch, the menu or userinfo.
_FOLDED = {code.lower(): code for code in LANGUAGES}
HOST = re.compile(r"[A-Za-z0-9.-]{1,253}")  # only its form: the allow-list comes later


@dataclass(frozen=True)
class Launch:
    """The launch parameters that were well formed; None where absent or ignored."""

    business_uid: str | None = None
    staff_uid: str | None = None
    staff_role: str | None = None
    language: str | None = None
    brand_host: str | None = None
    impersonate: str | None = None
    payment_permissions: str | None = None
    package: str | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, item.name) for item in fields(self))

    def names_another_business(self, business_uid: str) -> bool:
        """Say whether vcita opened the app for another business than `business_uid`."""
        return bool(self.business_uid and self.business_uid != business_uid)


FORMS = {
    "business_uid": UID,
    "staff_uid": UID,
    "staff_role": WORD,
    "brand_host": HOST,
    "impersonate": WORD,
    "payment_permissions": WORD,
    "package": WORD,
}
NAMES = tuple(item.name for item in fields(Launch))


def read_launch(query: MultiDict) -> Launch:
    """Return the launch parameters in `query`, ignoring (and logging) malformed ones.

    A parameter is ignored when it is repeated, too long, holds characters its kind
    never has, or names a language the App Market does not know. Ignoring is safe:
    each one is only ever a hint.
    """
    values = {}
    for name in NAMES:
        given = query.getlist(name)
        if not given:
            continue
        if len(given) > 1:
            logger.info("Ignored the launch parameter %s: it was repeated", name)
            continue
        if name == "language":
            value = language_code(given[0])
        else:
            value = given[0] if FORMS[name].fullmatch(given[0]) else None
        if value is None:
            logger.info("Ignored the launch parameter %s: not a value vcita sends", name)
            continue
        values[name] = value
    return Launch(**values)


def language_code(value: object) -> str | None:
    """Return the App Market locale `value` names in any spelling ("en_gb", "HE"), else None."""
    if not isinstance(value, str) or len(value) > 16:
        return None
    return _FOLDED.get(value.replace("_", "-").lower())


def remember(launch: Launch) -> None:
    """Keep this launch in the session (or forget the last one, for a plain visit)."""
    if launch:
        session[LAUNCH] = {name: value for name, value in asdict(launch).items() if value}
    else:
        session.pop(LAUNCH, None)


def remembered() -> Launch:
    """Return the launch this browser's session was last opened with, if any."""
    kept = session.get(LAUNCH)
    if not isinstance(kept, dict):
        return Launch()
    # Read back through the same checks: the session may come from another version.
    strings = {name: kept[name] for name in NAMES if isinstance(kept.get(name), str)}
    return read_launch(MultiDict(strings))


def forget_language() -> None:
    """Forget the language of the kept launch: the person chose another in the page's menu."""
    kept = session.get(LAUNCH)
    if isinstance(kept, dict) and "language" in kept:
        session[LAUNCH] = {name: value for name, value in kept.items() if name != "language"}
