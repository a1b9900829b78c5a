#!/usr/bin/env bash
# The DPO tables of a preset, in stages whose seeds grow, so that partial results are usable:
#   1. main + ranking, seeds 1,2 (and the cost table)
#   2. main + ranking, seeds 1,2,3
#   3. objectives, thresholds, coefficient, seeds 1,2,3, and the twin-token diagnostic (seed 1)
#   4. every table, seeds 1,2,3,4,5 (and the cost table again)
# Every run is cached by its configuration (--cache, $ALPHATOKEN_CACHE), so a stage reuses the runs
# of the stages before it and an interrupted queue resumes where it stopped when started again.
# Tables, figures and the cost table are written to ablations/results/<preset>-dpo after each stage.
#
# usage (from the repository root, in the background):
#   nohup ablations/dpo_queue.sh mini > runs/dpo_queue.log 2>&1 &
set -euo pipefail
preset="${1:-mini}"
out="ablations/results/${preset}-dpo"
# go.mod needs Go 1.27: machines that start on an older Go with GOTOOLCHAIN=local need this export.
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT="${GOEXPERIMENT:-simd}"
mkdir -p bin runs
# A binary of its own: rebuilding bin/alphatoken while the queue runs does not change it.
go build -o "bin/alphatoken-dpo-queue" ./cmd/alphatoken
at() { bin/alphatoken-dpo-queue ablate-dpo --preset "$preset" --out "$out" "$@"; }
start=$(date +%s)
stage() {
	echo "=== stage $1 ($(date -u +%FT%TZ), $(( $(date +%s) - start )) s into the queue): ${*:2}" >&2
	at "${@:2}"
}
stage 1 --suite main --suite ranking --seeds 1,2 --cost
stage 2 --suite main --suite ranking --seeds 1,2,3
stage 3 --suite objectives --suite thresholds --suite coefficient --seeds 1,2,3
bin/alphatoken-dpo-queue diagnose dpo-twins --preset "$preset" --seed 1 --out "$out/diagnostics"
stage 4 --suite all --seeds 1,2,3,4,5 --cost
echo "=== done ($(date -u +%FT%TZ), $(( $(date +%s) - start )) s)" >&2
