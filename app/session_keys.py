"""Every key the app keeps in the browser's signed session cookie, and which outlive a connect.

The session is Flask's signed cookie: it holds ids and one-time values, never a token.
When a browser connects, its session is rotated (no session fixation): everything is
dropped but the keys in KEPT_ON_ROTATION, and the keys a connect writes are written to
the fresh session only (`connect.browser.start_connected_session`).
"""

# Kept on rotation: what the browser was doing before it connected.
PENDING_FLOWS = "pending_flows"  # connect.flows: flows started in other tabs
LAUNCH = "launch"  # app_market.launch: what vcita opened the app with
CONNECTIONS = "connection_ids"  # connect.browser: every connection this browser made
LANGUAGE = "language"  # languages: the one chosen in the page's menu (Disconnect keeps it too)

# Written by a connect, to the fresh session.
CONNECTION = "connection_id"  # connect.browser: the one the dashboard shows, the newest
JUST_CONNECTED = "just_connected"  # connect.browser: its dashboard shows what the callback read
FLOW_TRACE = "flow_trace_id"  # connect.trace: the id of the connect's trace
HANDOFF_CODE = "handoff_code"  # app_market.handoffs: the popup's code, until /connected

# Dropped on rotation: they belong to the session before it connected.
HANDOFF_SECRET = "handoff_secret"  # noqa: S105 - a key's name; app_market.handoffs' frame secret
CSRF_TOKEN = "csrf_token"  # noqa: S105 - a key's name; security: a new session, a new one

KEPT_ON_ROTATION = (PENDING_FLOWS, LAUNCH, CONNECTIONS, LANGUAGE)
