#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests. Browser downloads (playwright install)
# do not work on these machines; Debian's package does. Never fails the build by itself:
# without Chromium the browser tests skip with a message (and fail under CI=true).
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium package for the browser tests..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null && exit 0
  echo "Could not install chromium with apt-get." >&2
else
  echo "Chromium is not installed and cannot be installed here (needs root and apt-get)." >&2
  echo "Install it with: sudo apt-get install chromium" >&2
fi
exit 0
