#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use when they are
# missing: the age, zstd, jq and openssl CLIs (to prove objects decrypt
# without coffer: doc/recover-without-coffer.md's script is run by the
# tests), restic and hyperfine (baselines), chromium (the drill report's
# page is opened in it by a test). Needs root or sudo; does nothing when
# everything is there.
set -euo pipefail
need=()
for p in age zstd jq openssl restic hyperfine chromium; do
  command -v "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
