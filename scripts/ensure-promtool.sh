#!/bin/sh
# Make sure `promtool` (Prometheus's checker) is on PATH, for the tests that run
# `promtool check metrics|rules|config`. It comes with Debian's `prometheus`
# package; installing it needs root and a package mirror, so `make install`
# does not do it (a CI machine may have neither): the test session calls this
# script and skips those tests, saying why, when it fails.
set -eu
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is not installed and apt-get is not available to install it" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "promtool is not installed; installing Debian's prometheus package needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package ships a service that must not start here (a container has no init).
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null 2>&1
