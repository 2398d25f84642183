#!/usr/bin/env bash
# First backup side by side (doc/performance.md, "Gear chunking"): COFFER_OLD,
# COFFER and the pipeline a user would write, in alternating rounds, each
# coffer into a fresh local repository after sync; wall, user + system CPU
# (children included: coffer's pg_dump, the pipeline's every stage) and peak
# RSS from GNU time, bytes stored, the load average.
#   KIND=db MB=1024 ROUNDS=5 COFFER=... COFFER_OLD=... BENCH_OUT=... scripts/bench-first.sh
#   KIND=folder DATA=<dir> ROUNDS=5 COFFER=... COFFER_OLD=... BENCH_OUT=... scripts/bench-first.sh
# db: a copy of mkinvoicedb -mb MB -seed 1 (<prefix>_base_<MB>mb, made if
# missing; BENCH_DB_PREFIX as in bench-postgres.sh), pipeline pg_dump -Fc -Z0
# | zstd -3 -T2 | age -R. folder: DATA (gendata -mb 1024 -seed 1, say),
# pipeline tar | zstd -3 -T2 | age -R.
set -euo pipefail
export PATH=/usr/lib/postgresql/15/bin:$PATH
KIND=${KIND:?set KIND=db or folder}; ROUNDS=${ROUNDS:-5}
NEW=${COFFER:?set COFFER}; OLD=${COFFER_OLD:?set COFFER_OLD}
OUT=${BENCH_OUT:?set BENCH_OUT}
ADMIN="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN" -c "$1"; }
case $KIND in
  db)
    MB=${MB:-256}; PFX=${BENCH_DB_PREFIX:-coffer_bench}
    BASE=${PFX}_base_${MB}mb DB=${PFX}_first_${MB}mb
    W=$OUT/first-db-$MB
    if [ "$(psql -X -tAq -d "$ADMIN" -c "select 1 from pg_database where datname = '$BASE'")" != 1 ]; then
      (cd "$(dirname "$0")/.." && go build -o $OUT/tools/ ./internal/testing/benchutil/cmd/mkinvoicedb)
      $OUT/tools/mkinvoicedb -admin "$ADMIN" -db $BASE -mb $MB -seed 1
    fi
    q "drop database if exists $DB with (force)"; q "create database $DB template $BASE"
    SRC="db=postgres:postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
    PIPE="pg_dump -Fc -Z0 -d 'postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable'" ;;
  folder)
    DATA=${DATA:?set DATA}; W=$OUT/first-folder
    find "$DATA" -type f -exec cat {} + >/dev/null # warm the page cache
    SRC="files=dir:$DATA"
    PIPE="tar -C '$DATA' -cf - ." ;;
  *) echo "KIND is db or folder" >&2; exit 2 ;;
esac
rm -rf $W; mkdir -p $W
$NEW keygen --out $W/keys >/dev/null
K=$W/keys
export COFFER_STATE_DIR=$W/state XDG_CACHE_HOME=$W/xdg
: >$W/results.txt
for i in $(seq 1 $ROUNDS); do
  for who in old new pipeline; do
    rm -rf $W/repo $W/state $W/xdg $W/out.age
    if [ $who = pipeline ]; then
      sync; load=$(cut -d' ' -f1 /proc/loadavg)
      /usr/bin/time -f "%e %U %S %M" -o $W/t sh -c "$PIPE | zstd -3 -T2 -q | age -R $K/recipients.txt >$W/out.age"
      stored=$(stat -c %s $W/out.age)
    else
      bin=$NEW; [ $who = old ] && bin=$OLD
      $bin --repo $W/repo init --owner-key $K/owner/owner.key --host $K/signing.pub -R $K/recipients.txt >/dev/null
      sync; load=$(cut -d' ' -f1 /proc/loadavg)
      /usr/bin/time -f "%e %U %S %M" -o $W/t $bin --json --repo $W/repo --signing-key $K/host/signing.key backup "$SRC" >$W/out.json
      stored=$(grep -o '"bytes_stored": *[0-9]*' $W/out.json | grep -o '[0-9]*$')
    fi
    read -r wall user sys rss <$W/t
    echo "$i $who wall=$wall cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') rss_kib=$rss stored=$stored load=$load" | tee -a $W/results.txt
  done
done
[ $KIND = db ] && q "drop database if exists $DB with (force)"
# Medians of wall and CPU per command.
for who in old new pipeline; do
  med() { grep " $who " $W/results.txt | grep -o "$1=[0-9.]*" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
  echo "$who: median wall $(med wall) s, CPU $(med cpu) s, peak RSS $(med rss_kib) KiB"
done | tee -a $W/results.txt
