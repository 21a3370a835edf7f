"""vcita's App Market, played by the sandbox: it opens the client app as vcita does.

vcita opens an installed app's registered landing page inside an iframe in its own UI
(the default) or in a new tab (`open_in_new_tab`), and appends unsigned launch
parameters to its query string. `/app-market` picks a demo staff member and a way of
opening; `/app-market/open` shows a vcita-like page with the app in its frame, or with
a link that opens it in a new tab, and an "Uninstall app" button that posts to
`/app-market/uninstall`, where vcita removes the app from the business (uninstall.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, render_template, request

from .csrf import posted_csrf_token_is_valid
from .directory import Business, StaffMember
from .pages import allow_framing, origin
from .settings import brand_host_of
from .uninstall import uninstall_app

bp = Blueprint("app_market", __name__, url_prefix="/app-market")

MODES = ("frame", "tab")
# Room for hostile test values; a longer one is a mistake, not a test.
MAX_EXTRA_LENGTH = 2000


@bp.get("")
def index() -> str:
    """Show the App Market: who is signed in to vcita, and how vcita opens the app."""
    return render_template(
        "sandbox/app_market.html",
        businesses=current_app.config["SANDBOX_DIRECTORY"].businesses,
        app_url=current_app.config["SANDBOX_APP_URL"],
    )


@bp.get("/open")
def open_app() -> str:
    """Open the app as vcita does: framed in a vcita-like page, or through a new-tab link."""
    app_url = current_app.config["SANDBOX_APP_URL"]
    if not app_url:
        abort(503, "Set SANDBOX_APP_URL to the app's landing page to open it from here.")
    business, member = launched_staff_member(
        request.args.get("business"), request.args.get("staff")
    )
    mode = request.args.get("mode", "frame")
    if mode not in MODES:
        abort(400, "mode must be frame (inside vcita) or tab (in a new tab).")
    extra = request.args.get("extra", "")
    if len(extra) > MAX_EXTRA_LENGTH:
        abort(400, f"extra must be at most {MAX_EXTRA_LENGTH} characters.")
    parameters = launch_parameters(business, member, current_app.config["SANDBOX_BRAND_DOMAIN"])
    if mode == "frame":
        allow_framing(app_url)
    return render_template(
        "sandbox/app_shell.html",
        business=business,
        member=member,
        mode=mode,
        landing_url=landing_url(app_url, parameters, extra),
    )


@bp.post("/uninstall")
def uninstall() -> str:
    """Remove the app from the staff member's business, as the business does in vcita."""
    if not posted_csrf_token_is_valid():
        abort(400, "This form was not sent from the sandbox's App Market page. Open it again.")
    business, _ = launched_staff_member(request.form.get("business"), request.form.get("staff"))
    done = uninstall_app(business)
    return render_template(
        "sandbox/uninstalled.html",
        business=business,
        revoked=done.revoked,
        # Where each went, by origin only: a target URL's path is the app's secret.
        deliveries=[
            {"origin": origin(d["target_url"]), "status": d["status"], "error": d["error"]}
            for d in done.deliveries
        ],
    )


def launched_staff_member(
    business_uid: str | None, staff_uid: str | None
) -> tuple[Business, StaffMember]:
    """Return the business and staff member to launch as; 404 unless one works for the other.

    Without `business` the staff member's own business is meant (the form sends only staff).
    """
    directory = current_app.config["SANDBOX_DIRECTORY"]
    member = directory.staff_member(staff_uid)
    if member is None or business_uid not in (None, member.business_uid):
        abort(404, "No such staff member in that business. Choose one on the App Market page.")
    return directory.business_of(member), member


def launch_parameters(
    business: Business, member: StaffMember, brand_domain: str
) -> list[tuple[str, str]]:
    """Return the launch parameters vcita appends to the landing page, in vcita's order."""
    locale = business.brand_theme.get("locale")
    return [
        ("business_uid", business.uid),
        ("staff_uid", member.uid),
        ("staff_role", member.role),
        ("language", locale if isinstance(locale, str) and locale else "en"),
        ("brand_host", brand_host_of(business, brand_domain)),
    ]


def landing_url(app_url: str, parameters: list[tuple[str, str]], extra: str = "") -> str:
    """Return the landing page with the parameters appended, then `extra` exactly as given.

    `extra` is raw query text so that tests can send what vcita never would: a repeated
    or hostile parameter, a bad encoding. The page escapes it like any other value.
    """
    query = urlencode(parameters)
    if extra:
        query = f"{query}&{extra}"
    # Keep the landing page's own query string, as vcita does.
    if "?" not in app_url:
        return f"{app_url}?{query}"
    if app_url.endswith(("?", "&")):
        return f"{app_url}{query}"
    return f"{app_url}&{query}"
