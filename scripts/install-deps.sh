#!/usr/bin/env bash
# Install the Debian packages the project needs on a fresh Debian 12 machine (as root).
# Idempotent: only missing packages are installed. Uses the system's configured
# package sources; no host is named here.
set -euo pipefail

PACKAGES=(
  debootstrap     # builds the Asterisk 22 root from Debian sid
  redis-server    # state store (the lab runs its own instance on loopback)
  postgresql      # the ticket archive, server + client (the lab runs its own cluster on loopback)
  sip-tester      # SIPp: citizens, agents and desks in tests and the demo
  espeak-ng       # Mandarin IVR prompts, generated at build time
  sox             # prompt resampling to 8 kHz, hold tone
  util-linux      # unshare (the chroot's private mount namespace), setpriv (lab PostgreSQL as postgres)
  python3-venv    # the project's virtualenv
  chromium        # headless browser for the wallboard test (driven by playwright)
  fonts-wqy-microhei  # a CJK font, so the wallboard screenshots show its Chinese labels
  prometheus      # promtool: checks deploy/prometheus.yml, deploy/alerts.yml and the /metrics text in tests
  openssl         # throw-away certificates for the linkage mTLS test
  make
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian redis-server package may start a system instance on 6379, and the
# postgresql package a system cluster (15/main) on 5432; the lab runs its own on
# 16379 and 15432 and never touches those. The prometheus package (installed for
# its promtool) may likewise start a system Prometheus on 9090 with Debian's own
# config; the tests only run promtool and never talk to it.
echo "install-deps: ok"
