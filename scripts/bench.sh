#!/usr/bin/env bash
# Folder benchmark of coffer beside tar | zstd | age and restic (issue 2):
# first backup to a fresh local repository, second backup of unchanged data
# (coffer with and without its change cache), second backup after adding 1%
# new files, and restore. Prints a Markdown summary and writes it to
# bench-out/results.md.
#
#   BENCH_SIZE_MB=1024  size of the generated invoice-archive folder
#   BENCH_RUNS=3        hyperfine runs per command
#   BENCH_OUT=bench-out where data (cached) and results go
#
# The data set is generated once per size under bench-out/data-<N>mb by
# internal/testing/benchutil/cmd/gendata and reused.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

SIZE="${BENCH_SIZE_MB:-1024}"
bench_tools

DATA="$OUT/data-${SIZE}mb"
NEWDAY="$OUT/newday-${SIZE}mb"
if [ ! -f "$DATA.done" ]; then
  rm -rf "$DATA" "$NEWDAY"
  "$TOOLS/gendata" -dir "$DATA" -mb "$SIZE" -seed 1
  "$TOOLS/gendata" -dir "$NEWDAY" -mb $(((SIZE + 99) / 100)) -seed 2 -large=false
  touch "$DATA.done"
fi
W="$OUT/folder-${SIZE}mb"
bench_init
find "$DATA" -type f -exec cat {} + >/dev/null # warm the page cache

C="$COFFER --json --repo"
SK="--signing-key $KEYS/host/signing.key"
INIT="init --owner-key $KEYS/owner/owner.key --host $KEYS/signing.pub"
REC="$KEYS/recipients.txt"

# (a) First backup into a fresh repository each run.
defcmd coffer-first coffer "$W/out/coffer-first.json" \
  "XDG_CACHE_HOME=$W/xdg1 $C $W/c1 $SK backup files=dir:$DATA >$W/out/coffer-first.json"
defprep coffer-first "rm -rf $W/c1 $W/xdg1; $COFFER --repo $W/c1 $INIT -R $REC >/dev/null"
defcmd tar-zstd-age-first file "$W/tar1.age" \
  "tar -C $DATA -cf - . | zstd -3 -T2 -q | age -R $REC >$W/tar1.age"
defprep tar-zstd-age-first "rm -f $W/tar1.age"
defcmd restic-first restic "$W/out/restic-first.json,$W/r1,0" \
  "restic -r $W/r1 backup --json $DATA >$W/out/restic-first.json"
defprep restic-first "rm -rf $W/r1 $W/restic-cache; restic -r $W/r1 init -q"
section "first backup, ${SIZE} MiB folder" coffer-first tar-zstd-age-first restic-first

# (b) Second backup of unchanged data: snapshots accumulate on the first
# backup's repositories, which changes nothing about the work done.
defcmd coffer-second-cache coffer "$W/out/coffer-second-cache.json" \
  "XDG_CACHE_HOME=$W/xdg1 $C $W/c1 $SK backup files=dir:$DATA >$W/out/coffer-second-cache.json"
defcmd coffer-second-nocache coffer "$W/out/coffer-second-nocache.json" \
  "XDG_CACHE_HOME=$W/xdg-empty $C $W/c1 $SK backup files=dir:$DATA >$W/out/coffer-second-nocache.json"
defprep coffer-second-nocache "rm -rf $W/xdg-empty"
defcmd tar-zstd-age-second file "$W/tar2.age" \
  "tar -C $DATA -cf - . | zstd -3 -T2 -q | age -R $REC >$W/tar2.age"
defprep tar-zstd-age-second "rm -f $W/tar2.age"
defcmd restic-second restic "$W/out/restic-second.json" \
  "restic -r $W/r1 backup --json $DATA >$W/out/restic-second.json"
section "second backup, unchanged" coffer-second-cache coffer-second-nocache tar-zstd-age-second restic-second

# (c) Second backup after adding 1% new files: each run starts from a copy
# of the repository (and change cache) holding only the first snapshot.
cp -a "$NEWDAY" "$DATA/new-day"
trap 'rm -rf "$DATA/new-day"' EXIT
find "$DATA/new-day" -type f -exec cat {} + >/dev/null
rbase=$(dirbytes "$W/r1")
# c2 is a copy of c1 (the same repository id): its own known-repositories
# store, or c1's would later miss c2's snapshots ("vanished").
defcmd coffer-plus1pct coffer "$W/out/coffer-plus1pct.json" \
  "XDG_CACHE_HOME=$W/xdg2 COFFER_STATE_DIR=$W/state2 $C $W/c2 $SK backup files=dir:$DATA >$W/out/coffer-plus1pct.json"
defprep coffer-plus1pct "rm -rf $W/c2 $W/xdg2 $W/state2; cp -a $W/c1 $W/c2; cp -a $W/xdg1 $W/xdg2"
defcmd tar-zstd-age-plus1pct file "$W/tar3.age" \
  "tar -C $DATA -cf - . | zstd -3 -T2 -q | age -R $REC >$W/tar3.age"
defprep tar-zstd-age-plus1pct "rm -f $W/tar3.age"
defcmd restic-plus1pct restic "$W/out/restic-plus1pct.json,$W/r2,$rbase" \
  "restic -r $W/r2 backup --json $DATA >$W/out/restic-plus1pct.json"
defprep restic-plus1pct "rm -rf $W/r2; cp -a $W/r1 $W/r2"
section "second backup after adding 1% new files ($(du -sh "$NEWDAY" | cut -f1) in $(find "$NEWDAY" -type f | wc -l) files)" \
  coffer-plus1pct tar-zstd-age-plus1pct restic-plus1pct
rm -rf "$DATA/new-day" "$W/c2" "$W/r2" "$W/xdg2" "$W/state2"
trap - EXIT

# (d) Restore of the first snapshot's data (latest in c1 and r1).
defcmd coffer-restore none "" \
  "$COFFER --repo $W/c1 --identity $KEYS/restore/identity.txt restore latest --to $W/rc >$W/out/coffer-restore.txt"
defprep coffer-restore "rm -rf $W/rc"
defcmd age-zstd-tar-restore none "" \
  "age -d -i $KEYS/restore/identity.txt $W/tar1.age | zstd -d -q | tar -C $W/rt -xf -"
defprep age-zstd-tar-restore "rm -rf $W/rt; mkdir $W/rt"
defcmd restic-restore none "" \
  "restic -r $W/r1 restore latest --target $W/rr >$W/out/restic-restore.txt"
defprep restic-restore "rm -rf $W/rr"
section "restore" coffer-restore age-zstd-tar-restore restic-restore
if diff -r --no-dereference "$DATA" "$W/rc" >/dev/null; then
  echo "bench: coffer restore is identical to the data set" >&2
else
  echo "bench: coffer restore DIFFERS from the data set" >&2
  exit 1
fi
rm -rf "$W/rc" "$W/rt" "$W/rr"

{
  echo "# coffer folder benchmark"
  echo
  echo "- data: $DATA: $(find "$DATA" -type f | wc -l) files, $(du -sh --apparent-size "$DATA" | cut -f1) (generated by internal/testing/benchutil/cmd/gendata, seed 1); 1% step adds $NEWDAY"
  echo "- repositories on local disk under $W; change cache via XDG_CACHE_HOME"
  machine
  "$TOOLS/benchreport" -title "results (BENCH_SIZE_MB=$SIZE)" "$W/rows.tsv"
  echo "Commands (from $W/cmd; each run through hyperfine):"
  echo
  for f in "$W"/cmd/*.sh; do
    echo "- \`$(basename "$f" .sh)\`: \`$(tail -n +3 "$f" | grep -v '^sync$' | tr '\n' ' ' | sed "s|$OUT|bench-out|g")\`"
  done
} >"$OUT/results.md"
cat "$OUT/results.md"
rm -f "$W/tar2.age" "$W/tar3.age"
