#!/usr/bin/env bash
# Installs, with apt-get, exactly the Debian 12 packages escucha needs that are missing.
# Usage: scripts/deps.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libzmq3-dev libmsgpack-dev libhiredis-dev libjansson-dev libyajl-dev libcurl4-openssl-dev
      libutf8proc-dev libsodium-dev libmicrohttpd-dev libcairo2-dev fonts-dejavu-core libxml2-dev libcsv-dev curl help2man
      redis-server python3
      # training text for the language identifier (trained at build time, see docs/language-id.md)
      gettext gettext-base libc-l10n locales iso-codes unicode-cldr-core libexttextcat-data
      fortunes-min fortunes fortunes-es fortunes-br libglib2.0-data xkb-data shared-mime-info
      gnupg-l10n appstream gsettings-desktop-schemas man-db procps psmisc xz-utils wget git
      diffutils findutils grep sed make coreutils tar login adduser libpam-runtime)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(libcmocka-dev python3 python3-aiosmtpd python3-yaml openssl chromium systemd dpkg-dev
           valgrind)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# The sentiment lexicons are built from npm packages at build time: node and npm are needed.
# Some machines carry a NodeSource nodejs that bundles npm (Debian's npm would conflict), so
# these are checked by command, not by package.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
