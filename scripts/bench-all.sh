#!/usr/bin/env bash
# make bench / make bench-quick: the folder, database and file-count
# benchmarks in one run, then one summary: bench-out/results.json (every
# row: medians, min-max, ratios, peak RSS, bytes) and bench-out/ratios.svg
# (coffer's median over each other command's), beside the three Markdown
# files the scripts write.
#
#   scripts/bench-all.sh          full: 1 GiB folder, ~1 GB database, 10k/100k/1M files, 3 runs
#   scripts/bench-all.sh -quick   CI size, under 3 minutes: 64 MiB folder and database, 10k/100k files
#
# The environment of the scripts (BENCH_SIZE_MB, BENCH_DB_MB, BENCH_FILES,
# BENCH_RUNS, BENCH_OUT) still overrides either mode.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${BENCH_OUT:-$ROOT/bench-out}"
if [ "${1:-}" = "-quick" ]; then
  export BENCH_SIZE_MB="${BENCH_SIZE_MB:-64}" BENCH_DB_MB="${BENCH_DB_MB:-64}" BENCH_RUNS="${BENCH_RUNS:-2}"
  export BENCH_FILES="${BENCH_FILES:-10000 100000}" BENCH_FILES_RUNS="${BENCH_FILES_RUNS:-1}"
fi
start=$(date +%s)
"$ROOT/scripts/bench.sh" >/dev/null
"$ROOT/scripts/bench-postgres.sh" >/dev/null
BENCH_RUNS="${BENCH_FILES_RUNS:-${BENCH_RUNS:-3}}" "$ROOT/scripts/bench-files.sh" >/dev/null
mkdir -p "$OUT/tools"
(cd "$ROOT" && go build -o "$OUT/tools/" ./internal/testing/benchutil/cmd/benchreport)
"$OUT/tools/benchreport" -title "coffer beside the baselines" -json "$OUT/results.json" -svg "$OUT/ratios.svg" \
  "$OUT/folder-${BENCH_SIZE_MB:-1024}mb/rows.tsv" "$OUT/postgres-${BENCH_DB_MB:-1024}mb/rows.tsv" "$OUT/files/rows.tsv" >"$OUT/results-all.md"
cat "$OUT/results-all.md"
grep -h -A4 '^Deduplication\|^Peak RSS growth' "$OUT/results-postgres.md" "$OUT/results-files.md" || true
echo "bench: $(($(date +%s) - start)) s; tables in $OUT/results*.md, $OUT/results.json, chart $OUT/ratios.svg"
