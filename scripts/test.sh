#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a fresh Debian
# machine with Rust, then runs every check and test. Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: ffmpeg/ffprobe (every written file is checked with them),
# chromium (a browser participant is recorded) and nasm (OpenH264's assembly, from step 6 on).
# Installed only when missing.
missing=()
{ command -v ffmpeg && command -v ffprobe; } >/dev/null || missing+=(ffmpeg)
command -v chromium >/dev/null || missing+=(chromium)
command -v nasm >/dev/null || missing+=(nasm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The published Standard Webhooks library verifies webhooks in the tests, as receivers would;
# Schemathesis checks the server against its own OpenAPI document.
python3 -c "import standardwebhooks" 2>/dev/null || python3 -m pip install --quiet standardwebhooks==1.1.0
python3 -c "import schemathesis" 2>/dev/null || python3 -m pip install --quiet schemathesis==4.32.5

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Unit, property, round-trip (ffprobe/ffmpeg), fuzz-corpus replay, CLI and doc tests.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
