"""Behind trusted proxies, only the forwarded headers a deployment needs are believed.

`TRUSTED_PROXY_COUNT=N` trusts X-Forwarded-For, -Proto and -Host from N proxies; never
X-Forwarded-Prefix or -Port, which a proxy may pass on from the client unchanged. And
no response ever carries a scheme-relative Location, which a browser reads as another
host.
"""

import pytest
from flask import redirect, request

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


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example/x", "///evil.example"])
def test_no_response_carries_a_scheme_relative_location(make_app, target):
    app = make_app()
    app.add_url_rule("/bounce", "bounce", lambda: redirect(target))

    response = app.test_client().get("/bounce")

    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
