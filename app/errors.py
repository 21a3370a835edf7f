"""Error pages: what happened and what the person can do next, with a real status code.

Every failure the flow can meet is mapped here once, so views raise and stay thin.
No page ever shows a code, state, token, secret or a stack trace. Every text is marked
with `_`, a lazy gettext here: the pages are constants, translated when one is shown.
"""

from dataclasses import dataclass, replace

from flask import Flask, current_app, render_template, request, url_for
from flask_babel import LazyString
from flask_babel import lazy_gettext as _
from werkzeug.exceptions import BadHost, HTTPException, MethodNotAllowed

from . import vcita
from .connect.flows import safe_next_url
from .logs import hide_url_secrets
from .storage.database import StoreUnavailable


@dataclass(frozen=True)
class ErrorPage:
    status: int
    title: LazyString  # translated when the page is shown, in its language
    message: LazyString
    action: str  # "connect", "retry" or "home": where the one button leads


PAGES = {
    vcita.InvalidCallback: ErrorPage(
        400,
        _("This sign-in link is no longer valid"),
        _(
            "It was already used, it expired after 10 minutes, or it was started in "
            "another browser. Nothing was connected. Start again from here."
        ),
        "connect",
    ),
    vcita.AccessDenied: ErrorPage(
        403,
        _("You didn't allow access"),
        _(
            "vcita Connect can only show your business details if you allow access on "
            "vcita's page. Nothing was connected."
        ),
        "connect",
    ),
    vcita.ProviderError: ErrorPage(
        502,
        _("vcita could not complete the approval"),
        _("vcita sent you back without an approval. Nothing was connected; please try again."),
        "connect",
    ),
    vcita.CodeRejected: ErrorPage(
        400,
        _("The approval expired — vcita codes last 30 seconds"),
        _(
            "The one-time code vcita gave us expired or was already used before we could "
            "redeem it. Nothing was connected; approving again takes a few seconds."
        ),
        "connect",
    ),
    # 502, as for every refusal from vcita: vcita answered, and turned this app down. The
    # page tells whoever runs the app that the fault is in its settings.
    vcita.ClientRejected: ErrorPage(
        502,
        _("vcita Connect is not set up correctly"),
        _(
            "vcita did not accept this app's client credentials. The administrator should "
            "check %(client_id)s and %(client_secret)s. Nothing was connected.",
            client_id="VCITA_CLIENT_ID",  # the names of the settings, never their values
            client_secret="VCITA_CLIENT_SECRET",  # noqa: S106
        ),
        "home",
    ),
    vcita.VcitaRefused: ErrorPage(
        502,
        _("vcita refused the request"),
        _(
            "vcita turned down a request this app made. Nothing was changed; try again, "
            "and if it keeps happening, contact the administrator."
        ),
        "connect",
    ),
    vcita.AccessRevoked: ErrorPage(
        502,
        _("vcita did not accept the new connection"),
        _(
            "vcita rejected the access it had just granted. Nothing was connected; "
            "please try again."
        ),
        "connect",
    ),
    vcita.VcitaUnavailable: ErrorPage(
        502,
        _("vcita did not answer"),
        _(
            "vcita did not answer in time or sent something we could not read. "
            "Nothing was changed. Please try again in a moment."
        ),
        "retry",
    ),
    StoreUnavailable: ErrorPage(
        503,
        _("We can't save your connection right now"),
        _(
            "Our database is not answering. Nothing was connected. "
            "Please try again in a few minutes."
        ),
        "retry",
    ),
}

HTTP_PAGES = {
    403: ErrorPage(
        403,
        _("This request was refused"),
        _(
            "The form was sent without its security token, perhaps from an old "
            "page. Go back, reload the page and try again."
        ),
        "home",
    ),
    404: ErrorPage(404, _("Page not found"), _("There is nothing at this address."), "home"),
    405: ErrorPage(
        405,
        _("That action isn't available here"),
        _("This address does not accept that kind of request."),
        "home",
    ),
    413: ErrorPage(413, _("That request was too large"), _("Nothing was changed."), "home"),
    500: ErrorPage(
        500,
        _("Something went wrong on our side"),
        _("The error was logged. Nothing was changed. Please try again."),
        "home",
    ),
}
# What a page of errors answers, as Flask takes it: the body, the status, the headers.
ErrorResponse = tuple[str, int, dict[str, str]]

DEFAULT_HTTP_PAGE = ErrorPage(
    400, _("That request could not be understood"), _("Nothing was changed."), "home"
)


def init_app(app: Flask) -> None:
    """Answer each known failure with its page."""
    for exception_class in PAGES:
        app.register_error_handler(exception_class, render_failure)
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(Exception, render_unexpected_error)


def render_failure(error: Exception) -> ErrorResponse:
    """Render the page for a failure of the flow, logging what happened."""
    page = next(page for kind, page in PAGES.items() if isinstance(error, kind))
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        # vcita throttled us (429) and said for how long: until then this app cannot
        # serve the page, which is a 503, the status Retry-After goes with (RFC 9110 §10.2.3).
        page = replace(page, status=503)
    # The exception text names the failure ("token endpoint answered 500"), never a value.
    current_app.logger.warning(
        "%s on %s: %s", type(error).__name__, hide_url_secrets(request.path), error
    )
    response = render_error(page)
    if retry_after:
        response[2]["Retry-After"] = str(retry_after)
    return response


def render_http_error(error: HTTPException) -> ErrorResponse:
    status = error.code or 400
    page = HTTP_PAGES.get(status, DEFAULT_HTTP_PAGE)
    response = render_error(ErrorPage(status, page.title, page.message, page.action))
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response[2]["Allow"] = ", ".join(error.valid_methods)
    return response


def render_unexpected_error(error: Exception) -> ErrorResponse:
    if isinstance(error, HTTPException):
        return render_http_error(error)
    current_app.logger.exception("Unexpected error on %s", hide_url_secrets(request.path))
    return render_error(HTTP_PAGES[500])


def render_error(page: ErrorPage) -> ErrorResponse:
    """Render one error page as (body, status, headers)."""
    if isinstance(request.routing_exception, BadHost):
        # The Host header cannot be read (say "." or a 64-letter label), so no link on
        # the page can be built: answer in a line of plain text instead.
        return f"{page.title}\n", page.status, {"Content-Type": "text/plain; charset=utf-8"}
    action_url, action_label = _action(page.action)
    # Translated now, as plain text: Jinja would take a LazyString as safe HTML, unescaped.
    body = render_template(
        "errors/error.html",
        title=str(page.title),
        message=str(page.message),
        action_url=action_url,
        action_label=str(action_label),
        # The language menu leads to the start page: an error page's address may hold a
        # spent code, or the very request that failed.
        menu_return=url_for("connect.index"),
    )
    return body, page.status, {}


def _action(action: str) -> tuple[str, LazyString]:
    if action == "retry":
        # A failed callback's code is spent: retrying it means approving again. Any other
        # page that failed is asked for again, as it was; a form sent cannot be re-sent
        # by a link, so its button leads to the start page.
        if request.endpoint == "connect.callback":
            return url_for("connect.start"), _("Try again")
        if request.method in ("GET", "HEAD"):
            query = request.query_string.decode("latin-1")
            again = safe_next_url(f"{request.path}?{query}" if query else request.path)
            if again is not None:
                return again, _("Try again")
        action = "home"
    if action == "connect":
        return url_for("connect.start"), _("Connect vcita again")
    return url_for("connect.index"), _("Back to the start page")
