#!/usr/bin/env bash
# Install one Debian package that a make target needs, when its command is missing:
#   scripts/install-debian-package.sh COMMAND PACKAGE "WHAT NEEDS IT"
# Never fails the build by itself: the tests that need the command skip with a message
# without it (and fail under CI=true).
set -u
command_name=$1 package=$2 needed_by=$3
if command -v "$command_name" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's $package package for $needed_by..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "$package" >/dev/null && exit 0
  echo "Could not install $package with apt-get." >&2
else
  echo "$command_name is not installed and cannot be installed here (needs root and apt-get)." >&2
  echo "Install it with: sudo apt-get install $package" >&2
fi
exit 0
