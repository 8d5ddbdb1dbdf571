#!/usr/bin/env bash
# Installs Debian's nginx for tests/e2e/test_nginx.py (`make nginx`, part of
# `make setup`). Only the binary is used: the test runs its own unprivileged
# instance on a free 127.0.0.1 port. Never starts the system service.
set -euo pipefail

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

if have_nginx; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-nginx: nginx is missing and cannot be installed here (needs root and apt-get);" \
       "tests/e2e/test_nginx.py will skip" >&2
  exit 0
fi

# Keep the package's postinst from starting a system nginx on port 80: a
# policy-rc.d that refuses every start, only for this install, unless the
# machine already has one (Debian container images do).
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends nginx >/dev/null; }
if ! install; then
  apt-get update -q >/dev/null
  install
fi
have_nginx
echo "install-nginx: $(/usr/sbin/nginx -v 2>&1)"
