#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (vtt_app). Idempotent.
# Playwright drives it through executable_path; no browser is ever downloaded by Playwright.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
command -v chromium >/dev/null
