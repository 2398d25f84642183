#!/usr/bin/env bash
# Restore drill figures (issue 9): the RTO of `coffer drill` for an invoice
# database of about BENCH_DB_MB MiB, into the ephemeral cluster and into a
# drill server, split into fetch, decrypt, restore and check; then the
# drill of the demo Airflow deployment (`coffer demo`, step 9). One run each:
# a measured command, not a timed test. Writes bench-out/drill-<N>mb/.
#
#   BENCH_DB_MB=1024   approximate pg_database_size of the invoice database
#   BENCH_PG=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#   BENCH_KEEP=1       keep the generated database (coffer_drillbench_<N>mb)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${BENCH_OUT:-$ROOT/bench-out}"
MB="${BENCH_DB_MB:-1024}"
ADMIN="${BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
export PATH="/usr/lib/postgresql/15/bin:$PATH"
COFFER="$OUT/tools/coffer"
mkdir -p "$OUT/tools"
(cd "$ROOT" && go build -o "$COFFER" ./cmd/coffer && go build -o "$OUT/tools/" ./internal/testing/benchutil/cmd/mkinvoicedb)

DB="coffer_drillbench_${MB}mb"
DSN="${ADMIN%%/postgres\?*}/$DB?sslmode=disable"
exists() { [ "$(psql -X -tAq -d "$ADMIN" -c "select 1 from pg_database where datname = '$DB'")" = 1 ]; }
exists || "$OUT/tools/mkinvoicedb" -admin "$ADMIN" -db "$DB" -mb "$MB" -seed 1
[ -n "${BENCH_KEEP:-}" ] || trap 'psql -X -q -d "$ADMIN" -c "drop database if exists $DB with (force)"' EXIT

W="$OUT/drill-${MB}mb"
rm -rf "$W" && mkdir -p "$W"
export COFFER_STATE_DIR="$W/state" COFFER_REPO="$W/repo"
"$COFFER" keygen --out "$W/keys" >/dev/null
export COFFER_IDENTITY="$W/keys/restore/identity.txt" COFFER_SIGNING_KEY="$W/keys/host/signing.key"
"$COFFER" init --owner-key "$W/keys/owner/owner.key" -R "$W/keys/recipients.txt" --host "$W/keys/signing.pub" >/dev/null
echo "database: $(psql -X -tAq -d "$ADMIN" -c "select pg_size_pretty(pg_database_size('$DB'))")"
/usr/bin/time -f "backup: %e s" "$COFFER" backup "invoices=postgres:$DSN" >/dev/null

summary() {
  jq -r '"\(.result): RTO \(.rto|.*10|round/10) s, RPO \(.rpo|round) s, read \(.bytes_read/1048576|round) MiB, \(.throughput_bytes_per_second/1048576*10|round/10) MiB/s",
    (.sources[] | "  \(.name) (\(.kind)): fetch \(.timings.fetch|.*10|round/10) s, decrypt \(.timings.decrypt|.*10|round/10) s, restore \(.timings.restore|.*10|round/10) s, check \(.timings.check|.*10|round/10) s, total \(.timings.total|.*10|round/10) s",
      (.checks[] | "    \(.result) \(.name): \(.detail[0:120])")),
    (.checks[] | "  \(.result) \(.name): \(.detail)")' "$1"
}
echo "== drill, ephemeral cluster"
"$COFFER" --json drill >"$W/drill-ephemeral.json" || true
summary "$W/drill-ephemeral.json" | tee "$W/drill-ephemeral.txt"
echo "== drill, drill server"
"$COFFER" --json drill --pg-server "$ADMIN" >"$W/drill-server.json" || true
summary "$W/drill-server.json" | tee "$W/drill-server.txt"
echo "== demo Airflow deployment"
(cd "$ROOT" && "$COFFER" demo --dir "$W/demo" | sed -n '/^9\./,/^demo ok/p') | tee "$W/drill-demo.txt"
