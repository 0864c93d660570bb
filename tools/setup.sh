#!/usr/bin/env bash
# Installs everything hmaf needs on a fresh Debian/Ubuntu machine: the system
# packages (espeak-ng, festival with three voices and flite for the embedded corpus,
# espeak-ng also for aeneas; ffmpeg for audio decoding; festival/estools headers
# to build aeneas-ng) and a virtual environment in .venv with the package and
# its test extras.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
APT_PACKAGES="espeak-ng libespeak-ng-dev ffmpeg festival-dev libestools-dev festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite"
for bin in espeak-ng ffmpeg ffprobe festival flite; do command -v "$bin" >/dev/null || need_apt=1; done
# shellcheck disable=SC2086
dpkg -s $APT_PACKAGES >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# aeneas-ng compiles against numpy; install numpy first so its build finds it.
.venv/bin/pip install -q "numpy==2.4.6; python_version < '3.12'" "numpy>=2.4.6; python_version >= '3.12'"
.venv/bin/pip install -q -e ".[test]"
