# Shared helpers of scripts/bench.sh and scripts/bench-postgres.sh; sourced,
# not run. Callers set W (the run's work folder) before calling bench_init.
#
# Each benchmarked command and its preparation are written to small scripts
# under $W/cmd, so hyperfine runs them without quoting trouble and
# /usr/bin/time can wrap them for peak RSS (GNU time reports the largest
# single process of the command, for a pipeline its biggest stage).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${BENCH_OUT:-$ROOT/bench-out}"
RUNS="${BENCH_RUNS:-3}"
COFFER="${COFFER:-$ROOT/bin/coffer}"
TOOLS="$OUT/tools"
export PATH="/usr/lib/postgresql/15/bin:$PATH"

bench_tools() {
  for t in hyperfine restic age zstd; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing (make tools installs it)" >&2; exit 1; }
  done
  if [ ! -x "$COFFER" ]; then
    (cd "$ROOT" && go build -o "$COFFER" ./cmd/coffer)
  fi
  # The tree can move on while a run takes half an hour; record what the
  # binary was built from (its VCS stamp, if any) and the tree at the start.
  BENCH_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+dirty')"
  BIN_REV="$(go version -m "$COFFER" 2>/dev/null | awk '$2 == "vcs.revision" {r = substr($3, 1, 7)} $2 == "vcs.modified" && $3 == "true" {m = "+dirty"} END {print r m}')"
  BIN_TIME="$(date -u -r "$COFFER" '+%Y-%m-%d %H:%M UTC')"
  mkdir -p "$TOOLS"
  (cd "$ROOT" && go build -o "$TOOLS/" ./internal/testing/benchutil/cmd/...)
  TIMEBIN=""
  if [ -x /usr/bin/time ] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
    TIMEBIN=/usr/bin/time
  else
    echo "bench: GNU /usr/bin/time not found; peak RSS is not measured" >&2
  fi
}

bench_init() {
  rm -rf "$W"
  mkdir -p "$W/cmd" "$W/rss" "$W/out" "$W/json"
  : >"$W/rows.tsv"
  export RESTIC_PASSWORD=coffer-bench RESTIC_CACHE_DIR="$W/restic-cache"
  # The repositories these runs make are remembered here, not in ~/.local.
  export COFFER_STATE_DIR="$W/state"
  "$COFFER" keygen --out "$W/keys" >/dev/null
  KEYS="$W/keys"
}

# defcmd NAME KIND OUT BODY: the command NAME runs BODY; KIND and OUT say how
# benchreport finds its new and stored bytes (coffer JSON, restic JSON lines,
# a file's size, or none).
declare -A KIND OUTF PREP
defcmd() {
  local name=$1
  KIND[$name]=$2 OUTF[$name]=$3
  printf '#!/usr/bin/env bash\nset -euo pipefail\n%s\n' "$4" >"$W/cmd/$name.sh"
  PREP[$name]=""
}

# defprep NAME BODY: run before every run of NAME, untimed. Every
# preparation ends with sync, so no run pays for an earlier run's writeback.
defprep() {
  printf '#!/usr/bin/env bash\nset -euo pipefail\n%s\nsync\n' "$2" >"$W/cmd/$1.prep.sh"
  PREP[$1]="$W/cmd/$1.prep.sh"
}

# section TITLE NAME...: runs the named commands side by side and records
# their rows for the report. The first name is the reference. The runs
# alternate (round 1 runs every command once, then round 2, ...), so that
# a burst of load from elsewhere on the machine lands on every command
# alike rather than on whichever ran during it; each round is one hyperfine
# call with --runs 1, and benchreport merges the rounds.
section() {
  local title=$1 slug
  shift
  SECTIONS=$((${SECTIONS:-0} + 1))
  slug=$SECTIONS-$(echo "$title" | tr -c 'a-zA-Z0-9\n' '-' | tr -s '-' | cut -c1-40)
  echo "== $title" >&2
  local round
  for round in $(seq 1 "$RUNS"); do
    local args=(--runs 1 --style basic --export-json "$W/json/$slug-r$round.json")
    local n
    for n in "$@"; do
      local c="bash $W/cmd/$n.sh"
      if [ -n "$TIMEBIN" ]; then
        c="$TIMEBIN -f %M -a -o $W/rss/$n.txt $c"
      fi
      if [ -n "${PREP[$n]}" ]; then
        args+=(--prepare "bash ${PREP[$n]}")
      else
        args+=(--prepare "sync")
      fi
      args+=(-n "$n" "$c")
    done
    hyperfine "${args[@]}" 2>&1 | grep -E '^(Benchmark|  Time)' >&2 || true
    [ -s "$W/json/$slug-r$round.json" ] || { echo "bench: round $round of \"$title\" failed" >&2; exit 1; }
  done
  for n in "$@"; do
    local rss="-"
    [ -n "$TIMEBIN" ] && rss="$W/rss/$n.txt"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$title" "$n" "$W/json/$slug-r*.json" "$rss" "${KIND[$n]}" "${OUTF[$n]}" >>"$W/rows.tsv"
  done
}

dirbytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

machine() {
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"
  echo "- file system of bench-out: $(df -T "$OUT" | awk 'NR==2{print $2}')"
  echo "- coffer binary: $COFFER, built $BIN_TIME$([ -n "$BIN_REV" ] && echo " from $BIN_REV"); source tree at the start of the run: $BENCH_REV"
  echo "- $(go version | cut -d' ' -f3-), $(restic version | cut -d' ' -f1-2), age $(age --version), zstd $(zstd --version | grep -o 'v[0-9.]*'), hyperfine $(hyperfine --version | cut -d' ' -f2)"
  echo "- runs per command: $RUNS, alternating (medians; each run's preparation is untimed and ends with sync)"
  echo "- peak RSS: GNU time %M of the command (for a pipeline: its largest process)"
}
