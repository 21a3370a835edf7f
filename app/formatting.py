"""Template filters that turn vcita's values into words a business owner reads."""

import re
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask_babel import format_timedelta, gettext

HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def init_app(app: Flask) -> None:
    """Register the filters with Jinja."""
    app.add_template_filter(in_words)
    app.add_template_filter(shown)
    app.add_template_filter(hex_colour)
    app.add_template_global(brand_colours)


def in_words(moment: datetime | None, now: datetime | None = None) -> str:
    """Say how far `moment` is from now, in the page's language: "in 20 years", "3 minutes ago"."""
    if moment is None:
        return gettext("never")
    distance = moment - (now or datetime.now(UTC))
    if abs(distance) < timedelta(minutes=1):
        return gettext("just now")
    # CLDR's words and plural forms for each locale: "בעוד 20 שנה", "3 lata temu".
    return format_timedelta(distance, granularity="minute", add_direction=True)


def shown(value: object) -> str:
    """Render a userinfo value as text; absent or empty values become a dash."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    return str(value)


def hex_colour(value: object) -> str | None:
    """Return `value` if it is a #rrggbb colour, else None (never raw CSS from vcita)."""
    if isinstance(value, str) and HEX_COLOUR.fullmatch(value):
        return value.lower()
    return None


def brand_colours(userinfo: dict) -> dict[str, str]:
    """Return the CSS colours to take from userinfo's `brand_theme`, only safe ones.

    Only `#rrggbb` values are used, so nothing vcita sends can inject CSS, and the
    primary/text pair only when it is readable (WCAG contrast of 4.5:1 or more).
    """
    theme = userinfo.get("brand_theme")
    colours = theme.get("colors") if isinstance(theme, dict) else None
    if not isinstance(colours, dict):
        return {}
    primary, text = hex_colour(colours.get("primary")), hex_colour(colours.get("text"))
    secondary = hex_colour(colours.get("secondary"))
    chosen = {}
    if primary and text and contrast_ratio(primary, text) >= 4.5:
        chosen["--accent"] = primary
        chosen["--accent-ink"] = text
    if secondary:
        chosen["--brand-line"] = secondary
    return chosen


def contrast_ratio(first: str, second: str) -> float:
    """Return the WCAG 2 contrast ratio of two #rrggbb colours."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
