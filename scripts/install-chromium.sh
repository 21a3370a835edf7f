#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests. Browser downloads (playwright install)
# do not work on these machines; Debian's package does. Never fails the build by itself:
# without Chromium the browser tests skip with a message (and fail under CI=true).
exec "$(dirname "$0")/install-debian-package.sh" chromium chromium "the browser tests"
