#!/usr/bin/env bash
# Install this edgeser bundle on a Raspberry Pi (Raspberry Pi OS 64-bit, Bookworm or later).
#   ./install.sh              create .venv here and install the requirements
#   ./install.sh --service    also install and start the systemd microphone listener
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' \
  || { echo "error: Python 3.11 to 3.13 is required (found $("$python" --version 2>&1))" >&2; exit 2; }
if command -v apt-get >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
  echo "note: for --mic install PortAudio first: sudo apt-get install -y libportaudio2" >&2
fi
"$python" -m venv "$here/.venv"
"$here/.venv/bin/pip" install --upgrade pip >/dev/null
"$here/.venv/bin/pip" install -r "$here/requirements.txt"
# The runner checks every file against manifest.json and loads the model (a changed bundle stops here,
# exit 6), then runs the build's held-out windows through this device's engine: a bundle over its drift
# budget on this device stops here too (exit 3), before any service is enabled.
(cd "$here" && .venv/bin/python -B -m runner --self-test) || {
  status=$?; echo "error: the bundle failed its check on this device (exit $status); the service was not installed" >&2
  exit "$status"; }
echo "installed: try  cd $here && .venv/bin/python -m runner some.wav"
if [[ "${1:-}" == "--service" ]]; then
  unit=/etc/systemd/system/edgeser-listener.service
  sed -e "s#@BUNDLE@#$here#g" -e "s#@USER@#${SUDO_USER:-$USER}#g" "$here/edgeser-listener.service" | sudo tee "$unit" >/dev/null
  sudo systemctl daemon-reload
  sudo systemctl enable --now edgeser-listener.service
  echo "service started: journalctl -u edgeser-listener -f"
fi
