#!/usr/bin/env bash
# File-count benchmark of coffer (issue 12): first backup, unchanged second
# backup and restore of trees of small files (10,000 / 100,000 / 1,000,000
# by default), peak RSS of each, to show how memory grows with the number
# of files. Writes bench-out/results-files.md.
#
#   BENCH_FILES="10000 100000 1000000"  tree sizes (files of 150-700 bytes)
#   BENCH_RUNS=3                        runs per command (alternating)
#
# Trees are generated once under bench-out/files-<N> by
# internal/testing/benchutil/cmd/gendata -files N (1,000,000 files take
# about 80 s and 4.2 GB of disk blocks on ext4) and reused.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

SIZES="${BENCH_FILES:-10000 100000 1000000}"
bench_tools
W="$OUT/files"
bench_init
C="$COFFER --json --repo"
SK="--signing-key $KEYS/host/signing.key"
INIT="init --owner-key $KEYS/owner/owner.key --host $KEYS/signing.pub"
REC="$KEYS/recipients.txt"
for N in $SIZES; do
  DATA="$OUT/files-$N"
  if [ ! -f "$DATA.done" ]; then
    rm -rf "$DATA"
    "$TOOLS/gendata" -dir "$DATA" -files "$N" -seed 1
    touch "$DATA.done"
  fi
  defcmd "coffer-first-$N" coffer "$W/out/first-$N.json" \
    "XDG_CACHE_HOME=$W/xdg-$N $C $W/c-$N $SK backup files=dir:$DATA >$W/out/first-$N.json"
  defprep "coffer-first-$N" "rm -rf $W/c-$N $W/xdg-$N; $COFFER --repo $W/c-$N $INIT -R $REC >/dev/null"
  section "$N small files, first backup" "coffer-first-$N"
  defcmd "coffer-second-$N" coffer "$W/out/second-$N.json" \
    "XDG_CACHE_HOME=$W/xdg-$N $C $W/c-$N $SK backup files=dir:$DATA >$W/out/second-$N.json"
  section "$N small files, unchanged second backup" "coffer-second-$N"
  defcmd "coffer-restore-$N" none "" \
    "$COFFER --repo $W/c-$N --identity $KEYS/restore/identity.txt restore latest --to $W/rc-$N >/dev/null"
  defprep "coffer-restore-$N" "rm -rf $W/rc-$N"
  section "$N small files, restore" "coffer-restore-$N"
  rm -rf "$W/rc-$N" "$W/c-$N" "$W/xdg-$N"
done

# Growth: the median peak RSS of each step at the largest tree over the smallest.
first=${SIZES%% *}
last=${SIZES##* }
growth() {
  local a b
  a=$(sort -n "$W/rss/coffer-$1-$first.txt" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  b=$(sort -n "$W/rss/coffer-$1-$last.txt" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  awk -v a="$a" -v b="$b" -v s="$1" -v f="$first" -v l="$last" \
    'BEGIN {printf "- %s: %.0f MiB at %d files, %.0f MiB at %d files: %.2fx (target: at most 1.5x, at most 80 MiB)\n", s, a/1024, f, b/1024, l, b/a}'
}
{
  echo "# coffer file-count benchmark"
  echo
  echo "- trees: bench-out/files-N, N small JSON files (150-700 bytes), 1,000 a folder (gendata -files N -seed 1)"
  machine
  "$TOOLS/benchreport" -title "results (BENCH_FILES=\"$SIZES\")" "$W/rows.tsv"
  echo "Peak RSS growth with the file count (median of the runs):"
  echo
  for s in first second restore; do growth $s; done
  echo
} >"$OUT/results-files.md"
cat "$OUT/results-files.md"
