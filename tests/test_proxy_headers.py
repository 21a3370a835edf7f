"""Behind trusted proxies, only the forwarded headers a deployment needs are believed.

`TRUSTED_PROXY_COUNT=N` trusts X-Forwarded-For, -Proto and -Host from N proxies; never
X-Forwarded-Prefix or -Port, which a proxy may pass on from the client unchanged. And
no response ever carries a Location that a browser reads as scheme-relative (`//host`,
`/\\host`, `/<tab>/host`), which it resolves to another host.
"""

import re

import pytest
from flask import redirect, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.urls import iri_to_uri

PREFIXES = ["/evil.example", "//evil.example", "/\\evil.example", "/%2Fevil.example"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_client_sent_forwarded_prefix_never_moves_a_redirect(make_app, prefix):
    app = make_app(TRUSTED_PROXY_COUNT="1")
    response = app.test_client().get(
        "/dashboard", headers={"X-Forwarded-Prefix": prefix, "X-Forwarded-Proto": "https"}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_a_forwarded_port_is_not_believed_apart_from_the_host(make_app):
    app = make_app(TRUSTED_PROXY_COUNT="1")

    @app.get("/probe")
    def probe():
        return {"host": request.host}

    response = app.test_client().get(
        "/probe", headers={"X-Forwarded-Host": "connect.example.com", "X-Forwarded-Port": "6666"}
    )
    assert response.json == {"host": "connect.example.com"}


def as_a_browser_reads(location: str) -> str:
    """Return `location` as a browser resolves it (WHATWG URL): controls, tabs gone, \\ is /."""
    location = location.strip("".join(map(chr, range(0x21))))
    return re.sub("[\t\n\r]", "", location).replace("\\", "/")


@pytest.fixture
def bouncing_app(make_app):
    """The app with one more route, which redirects wherever its `to` parameter says."""
    app = make_app()
    app.add_url_rule("/bounce", "bounce", lambda: redirect(request.args["to"]))
    return app


# Each is read by browsers as //evil.example: slashes, backslashes, a tab or a leading
# space or control character, which Werkzeug drops from a Location as browsers do.
SCHEME_RELATIVE = [
    "//evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "\\/evil.example/x",
    "///evil.example",
    "/\t/evil.example",
    " //evil.example",
    "\x00//evil.example",
]


@pytest.mark.parametrize("target", SCHEME_RELATIVE)
def test_no_response_carries_a_scheme_relative_location(bouncing_app, target):
    response = bouncing_app.test_client().get("/bounce", query_string={"to": target})

    assert response.status_code == 302
    assert not as_a_browser_reads(response.headers["Location"]).startswith("//")


# Paths, with what turns one into another host's address made likely.
pieces = st.sampled_from(["/", "\\", "\t", " ", "\x00", "\x1f", "evil.example", "%2F", ":", "@"])
paths = st.tuples(st.lists(pieces, max_size=6).map("".join), st.text(max_size=6)).map("".join)


def can_be_sent(location: str) -> bool:
    """Say whether Werkzeug can send `location` at all (no CR or LF, a host it can encode)."""
    try:
        iri_to_uri(location)
    except ValueError:  # "//\x80", "//host:x", "//[::1": not a URL, a 500 whatever we do
        return False
    return not {"\r", "\n"} & set(location)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=paths.filter(can_be_sent))
def test_no_redirect_leaves_the_site_by_a_scheme_relative_location(bouncing_app, target):
    response = bouncing_app.test_client().get("/bounce", query_string={"to": target})

    assert response.status_code == 302
    assert not as_a_browser_reads(response.headers["Location"]).startswith("//")
