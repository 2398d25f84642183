#!/usr/bin/env bash
# Database benchmark of coffer (issue 3): backup of an invoice database
# beside pg_dump alone, pg_dump | zstd | age and pg_dump | restic; the
# second day (1% of the invoices changed) with new bytes; restore beside
# pg_restore -j2 from a plaintext dump file. Writes bench-out/results-postgres.md.
#
#   BENCH_DB_MB=1024   approximate pg_database_size of the invoice database
#   BENCH_RUNS=3       hyperfine runs per command
#   BENCH_PG=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#   BENCH_DB_PREFIX=coffer_bench   names of the databases it makes (<prefix>_base_<N>mb, ...)
#
# The database is generated once per size (<prefix>_base_<N>mb, by
# internal/testing/benchutil/cmd/mkinvoicedb) and copied with CREATE DATABASE ...
# TEMPLATE for each run of this script.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

MB="${BENCH_DB_MB:-1024}"
ADMIN="${BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
dsn() { echo "${ADMIN%%/postgres\?*}/$1?sslmode=disable"; }
psqlc() { psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN" -c "$1"; }
bench_tools
command -v pg_dump >/dev/null && command -v pg_restore >/dev/null || { echo "bench: pg_dump/pg_restore missing" >&2; exit 1; }

PFX="${BENCH_DB_PREFIX:-coffer_bench}"
BASE="${PFX}_base_${MB}mb"
DB="${PFX}_${MB}mb"
RDB="${PFX}_restore_${MB}mb"
exists() { [ "$(psql -X -tAq -d "$ADMIN" -c "select 1 from pg_database where datname = '$1'")" = 1 ]; }
if [ ! -f "$OUT/$BASE.done" ] || ! exists "$BASE"; then
  mkdir -p "$OUT"
  psqlc "drop database if exists $BASE with (force)"
  "$TOOLS/mkinvoicedb" -admin "$ADMIN" -db "$BASE" -mb "$MB" -seed 1
  touch "$OUT/$BASE.done"
fi
psqlc "drop database if exists $DB with (force)"
psqlc "drop database if exists $RDB with (force)"
psqlc "create database $DB template $BASE"
DSN=$(dsn "$DB")
RDSN=$(dsn "$RDB")

W="$OUT/postgres-${MB}mb"
bench_init
C="$COFFER --json --repo"
SK="--signing-key $KEYS/host/signing.key"
INIT="init --owner-key $KEYS/owner/owner.key --host $KEYS/signing.pub"
REC="$KEYS/recipients.txt"
DUMP="pg_dump -Fc -Z0 -d '$DSN'"

# Day 1: fresh repositories each run.
defcmd coffer-pg-day1 coffer "$W/out/coffer-pg-day1.json" \
  "$C $W/c1 $SK backup db=postgres:'$DSN' >$W/out/coffer-pg-day1.json"
defprep coffer-pg-day1 "rm -rf $W/c1; $COFFER --repo $W/c1 $INIT -R $REC >/dev/null"
defcmd pg_dump-devnull none "" "$DUMP >/dev/null"
defcmd pg_dump-zstd-age-day1 file "$W/day1.dump.zst.age" \
  "$DUMP | zstd -3 -T2 -q | age -R $REC >$W/day1.dump.zst.age"
defcmd pg_dump-restic-day1 restic "$W/out/restic-day1.json,$W/r1,0" \
  "$DUMP | restic -r $W/r1 backup --json --stdin --stdin-filename invoices.dump >$W/out/restic-day1.json"
defprep pg_dump-restic-day1 "rm -rf $W/r1 $W/restic-cache; restic -r $W/r1 init -q"
section "database backup, day 1 (invoice database, ${MB} MiB target)" \
  coffer-pg-day1 pg_dump-devnull pg_dump-zstd-age-day1 pg_dump-restic-day1

# The plaintext dump pg_restore -j2 restores from, taken untimed.
pg_dump -Fc -Z0 -d "$DSN" -f "$W/day1.dump"

# Day 2: 1% of the invoices change; each run starts from a copy of the
# day-1 repository.
"$TOOLS/mkinvoicedb" -dsn "$DSN" -mutate 0.01 -seed 2
psqlc "checkpoint"
rbase=$(dirbytes "$W/r1")
# c2 is a copy of c1 (the same repository id): its own known-repositories
# store, or c1's would later miss c2's snapshots ("vanished").
defcmd coffer-pg-day2 coffer "$W/out/coffer-pg-day2.json" \
  "COFFER_STATE_DIR=$W/state2 $C $W/c2 $SK backup db=postgres:'$DSN' >$W/out/coffer-pg-day2.json"
defprep coffer-pg-day2 "rm -rf $W/c2 $W/state2; cp -a $W/c1 $W/c2"
defcmd pg_dump-zstd-age-day2 file "$W/day2.dump.zst.age" \
  "$DUMP | zstd -3 -T2 -q | age -R $REC >$W/day2.dump.zst.age"
defcmd pg_dump-restic-day2 restic "$W/out/restic-day2.json,$W/r2,$rbase" \
  "$DUMP | restic -r $W/r2 backup --json --stdin --stdin-filename invoices.dump >$W/out/restic-day2.json"
defprep pg_dump-restic-day2 "rm -rf $W/r2; cp -a $W/r1 $W/r2"
section "database backup, day 2 (1% of invoices changed)" coffer-pg-day2 pg_dump-zstd-age-day2 pg_dump-restic-day2

# Day 2, scattered: the same 1% of invoices paid, but spread over the whole
# table (mkinvoicedb -scattered), in a second copy of the database; coffer
# only, each run from a copy of the day-1 repository.
DBS="${PFX}_scattered_${MB}mb"
psqlc "drop database if exists $DBS with (force)"
psqlc "create database $DBS template $BASE"
SDSN=$(dsn "$DBS")
"$TOOLS/mkinvoicedb" -dsn "$SDSN" -mutate 0.01 -seed 2 -scattered
psqlc "checkpoint"
# The source is named db like day 1's, so that it deduplicates against it.
defcmd coffer-pg-day2-scattered coffer "$W/out/coffer-pg-day2-scattered.json" \
  "COFFER_STATE_DIR=$W/state3 $C $W/c3 $SK backup db=postgres:'$SDSN' >$W/out/coffer-pg-day2-scattered.json"
defprep coffer-pg-day2-scattered "rm -rf $W/c3 $W/state3; cp -a $W/c1 $W/c3"
section "database backup, day 2 (1% of invoices changed, scattered)" coffer-pg-day2-scattered
psqlc "drop database if exists $DBS with (force)"
rm -rf "$W/c2" "$W/c3" "$W/state2" "$W/state3"

# Restore of the day-1 snapshot into a new database.
defcmd coffer-pg-restore none "" \
  "$COFFER --repo $W/c1 --identity $KEYS/restore/identity.txt restore latest:db --to-postgres '$RDSN' >$W/out/coffer-pg-restore.txt"
defprep coffer-pg-restore "psql -X -q -d '$ADMIN' -c 'drop database if exists $RDB with (force)'"
defcmd pg_restore-j2 none "" "pg_restore -j2 -d '$RDSN' $W/day1.dump"
defprep pg_restore-j2 "psql -X -q -d '$ADMIN' -c 'drop database if exists $RDB with (force)' -c 'create database $RDB'"
section "database restore into a new database" coffer-pg-restore pg_restore-j2

dbsize=$(psql -X -tAq -d "$ADMIN" -c "select pg_size_pretty(pg_database_size('$BASE'))")
dumpsize=$(du -h --apparent-size "$W/day1.dump" | cut -f1)
{
  echo "# coffer PostgreSQL benchmark"
  echo
  echo "- database: $BASE (internal/testing/fixture, seed 1), pg_database_size $dbsize, pg_dump -Fc -Z0 $dumpsize; copied to $DB for the run; day 2 = fixture.MutatePostgres(0.01)"
  echo "- PostgreSQL $(psql -X -tAq -d "$ADMIN" -c 'show server_version') on 127.0.0.1, same machine; repositories on local disk under $W"
  machine
  "$TOOLS/benchreport" -title "results (BENCH_DB_MB=$MB)" "$W/rows.tsv"
  stored() { grep -o '"bytes_stored": *[0-9]*' "$W/out/$1.json" | grep -o '[0-9]*$'; }
  d1=$(stored coffer-pg-day1) d2=$(stored coffer-pg-day2) d2s=$(stored coffer-pg-day2-scattered)
  awk -v a="$d1" -v b="$d2" -v c="$d2s" 'BEGIN {
    printf "Deduplication: the day-2 backup stored %.1f%% of day 1'"'"'s bytes with the changed invoices clustered (target: at most 5%%), %.1f%% with them scattered.\n\n", 100*b/a, 100*c/a }'
  echo "coffer's restore includes its fingerprint check on the restored database; with --jobs 2 it hands pg_restore a memfd copy of the dump (not counted in coffer's RSS: it is shared memory)."
  echo
  echo "Commands (from $W/cmd; each run through hyperfine):"
  echo
  for f in "$W"/cmd/*.sh; do
    echo "- \`$(basename "$f" .sh)\`: \`$(tail -n +3 "$f" | grep -v '^sync$' | tr '\n' ' ' | sed "s|$OUT|bench-out|g")\`"
  done
} >"$OUT/results-postgres.md"
cat "$OUT/results-postgres.md"
psqlc "drop database if exists $RDB with (force)"
psqlc "drop database if exists $DB with (force)"
rm -f "$W/day1.dump" "$W/day2.dump.zst.age"
