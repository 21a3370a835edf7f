"""Serve vcita Connect: on the built-in sandbox unless vcita credentials are set.

`make run` serves it with Flask's development server; `make serve` (`--gunicorn`) with
gunicorn, as in production (workers and threads from WEB_CONCURRENCY, GUNICORN_THREADS).
Reads .env like the app does. With no VCITA_CLIENT_ID (or with VCITA_SANDBOX=true) it
starts the vcita sandbox as its own HTTP server on port 5001 beside the app on 5000.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
APP_PORT = os.environ.get("PORT", "5000")
SANDBOX_PORT = os.environ.get("SANDBOX_PORT", "5001")


def main() -> int:
    """Prepare the database, start the sandbox if needed, and serve the app."""
    env = {
        **{k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None},
        **os.environ,
    }
    use_sandbox = not env.get("VCITA_CLIENT_ID") or env.get("VCITA_SANDBOX", "").lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
    # Stop the servers we started however we are stopped: Ctrl+C or a plain kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children = []
    if use_sandbox:
        env["VCITA_SANDBOX"] = "true"
        env.setdefault("SANDBOX_REDIRECT_URIS", f"http://localhost:{APP_PORT}/callback")
        env.setdefault("VCITA_REDIRECT_URI", f"http://localhost:{APP_PORT}/callback")
        env.setdefault("VCITA_SANDBOX_URL", f"http://127.0.0.1:{SANDBOX_PORT}")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--port", SANDBOX_PORT], cwd=ROOT, env=env
            )
        )
        print(f"vcita sandbox: http://127.0.0.1:{SANDBOX_PORT}  (no vcita account needed)")
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    if "--gunicorn" in sys.argv:
        server = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
    else:
        server = [*flask, "run", "--port", APP_PORT]
    try:
        # Creates the schema, and in the sandbox the generated secrets, before any
        # worker starts: workers then all share them.
        subprocess.run([*flask, "init-db"], cwd=ROOT, env=env, check=True)
        print(f"vcita Connect: http://localhost:{APP_PORT}")
        app = subprocess.Popen(server, cwd=ROOT, env=env)
        children.append(app)
        return app.wait()
    except (KeyboardInterrupt, subprocess.CalledProcessError):
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 5
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
