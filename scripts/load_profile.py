"""Where a connect flow's CPU goes in the workers, by step: `make load ARGS="--profile"`.

scripts/profiling/sitecustomize.py profiles every thread of each gunicorn worker with its
own CPU clock while the flows run; `print_profile` sums the time spent inside the
functions of each step (inclusive, so an indented step is part of the one above it) and
prints it per completed flow, for the app and the bare client alike. cProfile slows
every call down, small ones most: the shares are the figures to read, and the
milliseconds only compare steps of one run.
"""

import pstats

# A function, as pstats names it: the end of its file's path, and its name.
Function = tuple[str, str]
# What the worker spends outside the app and its reading threads: gunicorn's HTTP, its
# access log, its threads.
OUTSIDE_THE_APP = [("", "")]
# (label, the functions whose time it is); a function called from a given one only:
# (function, caller). An empty list is a heading.
STEPS: list[tuple[str, list]] = [
    ("the worker outside the app: gunicorn's HTTP, its access log", OUTSIDE_THE_APP),
    ("the app, request by request (Flask's wsgi_app)", [("flask/app.py", "wsgi_app")]),
    (
        "  the session cookie: read, then signed and written",
        [
            ("flask/sessions.py", "open_session"),
            ("flask/sessions.py", "save_session"),
        ],
    ),
    (
        "  security headers, CSP, request id, a clean g",
        [
            ("app/security.py", "add_security_headers"),
            ("app/security.py", "keep_redirects_on_this_site"),
            ("app/security.py", "refuse_undecodable_query"),
            ("app/logs.py", "assign_request_id"),
            ("app/logs.py", "expose_request_id"),
            ("app/__init__.py", "start_with_a_clean_g"),
            ("app/app_market/framing.py", "let_vcita_frame_its_pages"),
        ],
    ),
    ("  /connect", [("app/views.py", "start"), ("scripts/bare_client.py", "connect")]),
    ("  /callback", [("app/views.py", "callback"), ("scripts/bare_client.py", "callback")]),
    ("    the state claimed, and its commit", [("app/connect/used_states.py", "mark_used")]),
    (
        "    the exchange",
        [
            ("app/vcita.py", "exchange_code"),
            (("authlib/oauth2/client.py", "fetch_token"), ("scripts/bare_client.py", "callback")),
        ],
    ),
    (
        "    userinfo",
        [
            ("app/vcita.py", "fetch_userinfo"),
            (("requests/sessions.py", "get"), ("scripts/bare_client.py", "callback")),
        ],
    ),
    ("    the connection saved, and its commit", [("app/storage/connections.py", "save")]),
    (
        "    a fresh session for the connection",
        [
            ("app/connect/browser.py", "start_connected_session"),
        ],
    ),
    ("  /dashboard", [("app/views.py", "dashboard"), ("scripts/bare_client.py", "dashboard")]),
    ("    the connection read and opened", [("app/connect/browser.py", "current_connection")]),
    (
        "    userinfo again",
        [
            (("requests/sessions.py", "get"), ("scripts/bare_client.py", "dashboard")),
        ],
    ),
    (
        "    the page's templates",
        [
            ("flask/templating.py", "render_template"),
            ("flask/templating.py", "render_template_string"),
        ],
    ),
    ("    the CSRF token for its Disconnect form", [("app/security.py", "csrf_token")]),
    (
        "the clients list, on a reading thread",
        [
            ("app/token_use/client_reads.py", "_recent_clients"),
        ],
    ),
    ("Across the steps:", []),
    ("  calls to vcita (requests, Authlib)", [("requests/sessions.py", "request")]),
    (
        "    proxy settings read from the environment",
        [
            ("requests/sessions.py", "merge_environment_settings"),
        ],
    ),
    ("  templates compiled", [("jinja2/environment.py", "compile")]),
    (
        "  encryption (Fernet: the token, userinfo, clients)",
        [
            ("app/storage/sealer.py", "seal"),
            ("app/storage/sealer.py", "open"),
            ("app/storage/sealer.py", "open_and_reseal"),
        ],
    ),
    ("  SQL statements", [("sqlalchemy/engine/base.py", "execute")]),
    ("  transactions: the lock, BEGIN and COMMIT", [("app/storage/database.py", "transaction")]),
    (
        "  the session's size measured (flows.fit_session_cookie)",
        [
            ("app/connect/flows.py", "fit_session_cookie"),
        ],
    ),
    ("  log lines (the app's and gunicorn's access log)", [("logging/__init__.py", "_log")]),
]


def print_profile(stats: pstats.Stats, flows: int) -> None:
    """Print the workers' CPU per completed flow, by step, as the profile counted it."""
    total = stats.total_tt  # type: ignore[attr-defined]
    if not flows or not total:
        return
    in_app = inclusive(stats, [("flask/app.py", "wsgi_app")])
    reading = inclusive(stats, [("app/token_use/client_reads.py", "_recent_clients")])
    print(f"\nworkers' CPU per flow by step (cProfile, each thread's CPU clock; {total:.2f} s):")
    for label, counted in STEPS:
        if not counted:
            print(f"  {label}")
            continue
        if counted is OUTSIDE_THE_APP:
            seconds = total - in_app - reading
        else:
            seconds = inclusive(stats, counted)
        if seconds <= 0:
            continue
        print(f"  {label:<62}{seconds / flows * 1000:7.2f} ms {seconds / total:6.1%}")


def inclusive(stats: pstats.Stats, functions: list) -> float:
    """Return the seconds spent inside any of `functions` (each alone, or as called from one)."""
    seconds = 0.0
    for function in functions:
        called, caller = function if isinstance(function[0], tuple) else (function, None)
        for key, (_, _, _, cumulative, callers) in stats.stats.items():  # type: ignore[attr-defined]
            if not matches(key, called):
                continue
            if caller is None:
                seconds += cumulative
            else:
                seconds += sum(
                    times[3] for source, times in callers.items() if matches(source, caller)
                )
    return seconds


def matches(key: tuple, function: Function) -> bool:
    filename, _, name = key
    path, wanted = function
    return name == wanted and filename.endswith(path)
