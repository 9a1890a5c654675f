#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a fresh Debian
# machine with Rust, then runs every check and test. Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: ffmpeg/ffprobe (every written file is checked with them),
# chromium (a browser participant is recorded), nasm (OpenH264's assembly, from step 6 on),
# postgresql (the metadata store's second engine, step 7) and coturn (the TURN relay media can
# be forced through, step 7) and openssl (keys made the way an operator makes them open
# encrypted recordings, step 8). Installed only when missing.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
missing=()
{ command -v ffmpeg && command -v ffprobe; } >/dev/null || missing+=(ffmpeg)
command -v chromium >/dev/null || missing+=(chromium)
command -v nasm >/dev/null || missing+=(nasm)
{ command -v pg_ctlcluster && command -v psql && command -v pg_dump; } >/dev/null || missing+=(postgresql)
command -v turnserver >/dev/null || missing+=(coturn)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Chromium's first start on a fresh machine builds its caches: do it here, once, so the browser
# tests do not pay for it, and stop early when the browser cannot run at all.
chromium_said=$(timeout 120 chromium --headless=new --no-sandbox --disable-gpu --dump-dom about:blank 2>&1 >/dev/null) ||
  { echo "chromium does not start; the end of what it said:" >&2; tail -n 20 <<<"$chromium_said" >&2; exit 1; }

# PostgreSQL from Debian's packages, run as the postgres user: start the cluster the package
# made (or make one), give the tests a role, and drop what earlier runs left.
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
pg_lsclusters -h | grep -q "^$pg_version main" || $sudo pg_createcluster "$pg_version" main
pg_lsclusters -h | grep -q "^$pg_version main .* online" || $sudo pg_ctlcluster "$pg_version" main start
pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" { print $3 }')
as_postgres() { $sudo runuser -u postgres -- "$@"; }
as_postgres psql -p "$pg_port" -qtAc "SELECT 1 FROM pg_roles WHERE rolname = 'convrec'" | grep -q 1 ||
  as_postgres psql -p "$pg_port" -qc "CREATE ROLE convrec LOGIN SUPERUSER PASSWORD 'convrec'"
export CONVREC_TEST_POSTGRES="postgres://convrec:convrec@127.0.0.1:$pg_port/postgres"
drop_test_databases() {
  psql "$CONVREC_TEST_POSTGRES" -qtAc "SELECT datname FROM pg_database WHERE datname LIKE 'convrec_test_%'" |
    while read -r name; do psql "$CONVREC_TEST_POSTGRES" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)"; done
}
drop_test_databases

# s3s-fs: an S3-compatible server that checks request signatures, for the object-store tests
# (0.14.1: the newest that builds with this toolchain).
command -v s3s-fs >/dev/null || cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet

# Azurite: Microsoft's Azure Blob Storage emulator (checks Shared Key signatures), from npm
# with the machine's Node.js, for the Azure object-store test.
command -v azurite-blob >/dev/null || $sudo npm install --global --no-audit --no-fund --silent azurite@3.35.0

# The published Standard Webhooks library verifies webhooks in the tests, as receivers would;
# Schemathesis checks the server against its own OpenAPI document.
python3 -c "import standardwebhooks" 2>/dev/null || python3 -m pip install --quiet standardwebhooks==1.1.0
python3 -c "import schemathesis" 2>/dev/null || python3 -m pip install --quiet schemathesis==4.32.5

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Unit, property, round-trip (ffprobe/ffmpeg), fuzz-corpus replay, CLI and doc tests.
log=$(mktemp)
trap 'rm -f "$log"; drop_test_databases' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# The suites that run servers again, each server on a PostgreSQL database of its own (the
# metadata store's own tests run on both engines in the pass above). They are the test binaries
# of crates/convrec and crates/server the pass above built, run as cargo runs them (from their
# crate's folder): `cargo test -p` would unify dependency features differently and rebuild.
server_tests=$(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    crate = os.path.dirname(m.get("manifest_path", ""))
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and os.path.basename(crate) in ("convrec", "server"):
        print(crate, m["executable"])
')
[ "$(wc -l <<<"$server_tests")" -gt 10 ] || { echo "the PostgreSQL pass found too few test binaries: $server_tests" >&2; exit 1; }
# Tests whose servers are on PostgreSQL in every pass (nodes.rs, and faults.rs's database
# outages) ran on it above already. Of object_store.rs only the tests whose multipart-upload
# bookkeeping (the `uploads` table) decides the outcome run again; the others test the object
# stores, whose code does not depend on the engine. A test's standard input is /dev/null, not
# the list this loop reads (a child that read it would take the start of the next line).
while read -r crate executable; do
  skip=(--skip the_database_away)
  case "${executable##*/}" in
    nodes-*) continue ;;
    object_store-*) skip+=(--skip recordings_are_stored_in --skip past_the_backlog_limit) ;;
  esac
  echo "PostgreSQL pass: ${executable##*/}"
  (cd "$crate" && CONVREC_TEST_DATABASE=postgres "$executable" "${skip[@]}" </dev/null) 2>&1 | tee -a "$log"
done <<<"$server_tests"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
