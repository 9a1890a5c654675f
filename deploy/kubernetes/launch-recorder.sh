#!/bin/sh
# The recorder command template for Kubernetes (--recorder-command, see docs/operations.md):
# creates a per-recording Secret holding the entry point (read from the environment, so it is on
# no command line), then the recorder Job from recorder-job.yaml, and lasts as long as the Job:
# the server takes this script's exit for the recorder's, and kills it to stop a recorder (the
# trap deletes the Job). Needs kubectl and envsubst in the server's image. Untested here.
set -eu
JOB="convrec-rec-$(printf '%s' "$CONVREC_RECORDING_ID" | tr 'A-Z_' 'a-z-' | cut -c1-40)"
ENTRY_SECRET="$JOB-entry"
export JOB ENTRY_SECRET
cleanup() { kubectl delete job "$JOB" secret "$ENTRY_SECRET" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }
trap 'cleanup; exit 143' TERM INT
printf 'CONVREC_ENTRY_POINT=%s\n' "$CONVREC_ENTRY_POINT" |
  kubectl create secret generic "$ENTRY_SECRET" --from-env-file=/dev/stdin >/dev/null
envsubst '${JOB} ${ENTRY_SECRET}' < "$(dirname "$0")/recorder-job.yaml" | kubectl create -f - >/dev/null
while :; do
  status=$(kubectl get job "$JOB" -o jsonpath='{.status.succeeded}/{.status.failed}' 2>/dev/null || echo "/")
  case "$status" in
    1/*) cleanup; exit 0 ;;
    */1) cleanup; exit 1 ;;
  esac
  sleep 2
done
