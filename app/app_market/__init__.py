"""Opened from vcita's App Market: its launch hints, its frame, and the popup's handoff.

vcita opens the app at its landing page, in a frame of its own page or in a new tab,
with unsigned launch parameters (`launch`). Inside the frame the session lives in a
partitioned cookie and only vcita may frame the app (`framing`); Connect goes through a
popup whose connection only the frame's own session can redeem (`handoffs`).
"""

from flask import Flask

from . import framing, handoffs


def init_app(app: Flask) -> None:
    """Keep the frame's session apart, let vcita frame its pages, keep handoffs."""
    framing.init_app(app)
    handoffs.init_app(app)
