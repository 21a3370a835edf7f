"""gunicorn settings for `make serve`. Workers and threads come from the environment."""

import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '5000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A connect flow waits on vcita for up to ~13 s (the token timeout); leave room for it.
timeout = 30
# gunicorn's control socket has one path per user ($HOME/.gunicorn/gunicorn.ctl): two
# instances on one machine would take it from each other, and nothing here uses it.
control_socket_disable = True
accesslog = "-"
# %(U)s is the path without its query string: a callback's query carries a code and state.
# The X-Request-Id the app set ties the access line to the app's own log lines.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms [%({x-request-id}o)s]'
