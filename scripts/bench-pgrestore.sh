#!/usr/bin/env bash
# Database restore side by side (doc/performance.md, "Database restore"):
# pg_restore -j2 from a plaintext file, COFFER and COFFER_OLD restoring the
# same snapshot (taken by COFFER), in alternating rounds; peak RSS and load.
#   MB=64 ROUNDS=5 COFFER=... COFFER_OLD=... BENCH_OUT=... scripts/bench-pgrestore.sh
set -euo pipefail
export PATH=/usr/lib/postgresql/15/bin:$PATH
MB=${MB:-64}; ROUNDS=${ROUNDS:-5}
NEW=${COFFER:?set COFFER}; OLD=${COFFER_OLD:?set COFFER_OLD}
OUT=${BENCH_OUT:?set BENCH_OUT}; W=$OUT/pg-$MB; mkdir -p $W
ADMIN="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
dsn() { echo "postgres://postgres@127.0.0.1:5432/$1?sslmode=disable"; }
BASE=coffer_pgrestore_base_${MB}mb DB=coffer_pgrestore_${MB}mb RDB=coffer_pgrestore_restore_${MB}mb
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN" -c "$1"; }
[ -x $OUT/tools/mkinvoicedb ] || (cd "$(dirname "$0")/.." && go build -o $OUT/tools/ ./internal/testing/benchutil/cmd/mkinvoicedb)
if [ "$(psql -X -tAq -d "$ADMIN" -c "select 1 from pg_database where datname = '$BASE'")" != 1 ] || [ ! -f $OUT/$BASE.done ]; then
  q "drop database if exists $BASE with (force)"
  $OUT/tools/mkinvoicedb -admin "$ADMIN" -db $BASE -mb $MB -seed 1
  touch $OUT/$BASE.done
fi
if [ ! -f $W/ready ]; then
  rm -rf $W/*
  q "drop database if exists $DB with (force)"; q "create database $DB template $BASE"
  export COFFER_STATE_DIR=$W/state
  $NEW keygen --out $W/keys >/dev/null
  $NEW --repo $W/repo init --owner-key $W/keys/owner/owner.key --host $W/keys/signing.pub -R $W/keys/recipients.txt >/dev/null
  $NEW --repo $W/repo --signing-key $W/keys/host/signing.key backup db=postgres:"$(dsn $DB)" >/dev/null
  pg_dump -Fc -Z0 -d "$(dsn $DB)" -f $W/day1.dump
  touch $W/ready
fi
export COFFER_STATE_DIR=$W/state
RDSN=$(dsn $RDB)
run() { # name
  q "drop database if exists $RDB with (force)"
  case $1 in
    pg_restore-j2) q "create database $RDB"; sync; /usr/bin/time -f "%e %M" -o $W/t pg_restore -j2 -d "$RDSN" $W/day1.dump ;;
    coffer) sync; /usr/bin/time -f "%e %M" -o $W/t $NEW --repo $W/repo --identity $W/keys/restore/identity.txt restore latest:db --to-postgres "$RDSN" >/dev/null ;;
    coffer-old)   sync; /usr/bin/time -f "%e %M" -o $W/t $OLD --repo $W/repo --identity $W/keys/restore/identity.txt restore latest:db --to-postgres "$RDSN" >/dev/null ;;
  esac
  echo "$1 $(cat $W/t) load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a $W/results.txt
}
names=(pg_restore-j2 coffer coffer-old)
for r in $(seq 1 $ROUNDS); do
  echo "round $r $(uptime)" >> $W/results.txt
  for i in 0 1 2; do run ${names[$(( (i + r) % 3 ))]}; done
done
q "drop database if exists $RDB with (force)"
echo "dump: $(stat -c %s $W/day1.dump) bytes" >> $W/results.txt
for n in "${names[@]}"; do
  grep "^$n " $W/results.txt | awk -v n=$n '{print $2, $3}' | sort -n | awk -v n=$n '{t[NR]=$1; m[NR]=$2} END {printf "%s median %.2f s (n=%d, min %.2f max %.2f), RSS median-run %s KiB\n", n, t[int((NR+1)/2)], NR, t[1], t[NR], m[int((NR+1)/2)]}'
done | tee -a $W/results.txt
