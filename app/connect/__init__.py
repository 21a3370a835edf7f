"""The connect flow, vcita's guide steps 2 and 3: from Connect to a connection in this browser.

`flows` keeps each pending flow's state in the session, `used_states` refuses a state
used before, `browser` remembers which connections this browser made, and `trace` (with
`flow_traces`) shows a developer what went over the wire.
"""

from flask import Flask

from . import flow_traces, used_states


def init_app(app: Flask) -> None:
    """Keep used states and flow traces on the app's database."""
    used_states.init_app(app)
    flow_traces.init_app(app)
