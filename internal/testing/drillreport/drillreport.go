// Package drillreport builds realistic drill reports for the tests of the
// drill evidence (renderers, the repository's drill history, the
// commands), so that they run without the drill engine.
package drillreport

import (
	"time"

	"github.com/cofferhq/coffer/drill"
	"github.com/cofferhq/coffer/internal/repo"
)

// Options shape a sample report.
type Options struct {
	// Snapshot is the snapshot id (a fresh one when empty).
	Snapshot string
	// Started is the drill's start (a fixed time when zero).
	Started time.Time
	// Fail makes the invoice database's fingerprints check fail.
	Fail bool
	// Detail, when set, is the detail of a check that quotes restored
	// data (to test escaping).
	Detail string
}

func secs(f float64) drill.Seconds { return drill.Seconds(f * float64(time.Second)) }

// Sample returns a drill of a snapshot holding a PostgreSQL invoice
// database, an Airflow deployment and a folder of invoice documents: 13
// checks, one a warning, the fingerprints failing with Fail.
func Sample(o Options) *drill.Report {
	if o.Snapshot == "" {
		o.Snapshot = repo.NewID()
	}
	if o.Started.IsZero() {
		o.Started = time.Date(2026, 11, 30, 11, 32, 5, 0, time.UTC)
	}
	snapTime := o.Started.Add(-(9*time.Hour + 32*time.Minute + 5*time.Second))
	fp := drill.Check{Name: "fingerprints", Result: drill.Pass, Detail: "row counts of 4 tables and 2 check queries equal those taken at backup time"}
	if o.Fail {
		fp = drill.Check{Name: "fingerprints", Result: drill.Fail, Detail: "public.invoices: 1204331 rows at backup time, 1204330 restored"}
	}
	userDetail := "select count(*) from invoices where status = 'open': 1873, as at backup time"
	if o.Detail != "" {
		userDetail = o.Detail
	}
	r := &drill.Report{
		Version: drill.ReportVersion, ID: repo.NewID(), Result: drill.Pass,
		Repository: "s3://acme-backups/airflow-prod", RepositoryID: repo.NewID(),
		Snapshot: o.Snapshot, SnapshotTime: snapTime, SnapshotHost: "airflow-prod-1",
		Started: o.Started, Finished: o.Started.Add(83*time.Second + 400*time.Millisecond),
		Host: "drill-runner-2", User: "auditor@acme.example", Coffer: "v0.9.0 (3f2a1c9)",
		RTO: secs(81.7), RPO: drill.Seconds(o.Started.Sub(snapTime)), BytesRead: 1_288_490_189,
		Checks: []drill.Check{{Name: "integrity", Result: drill.Pass, Detail: "signatures and hashes of 97 objects"}},
		Sources: []drill.SourceReport{
			{Name: "invoices", Kind: "postgres", Result: drill.Pass, Scratch: "database coffer_drill_5e1c0a on the scratch cluster",
				BytesRead: 1_073_741_824, Timings: drill.Timings{Fetch: secs(12.4), Decrypt: secs(6.1), Restore: secs(48.3), Check: secs(9.8), Total: secs(81.7)},
				Checks: []drill.Check{
					{Name: "restored", Result: drill.Pass, Detail: "pg_restore: 4 tables, 6 indexes"},
					fp,
					{Name: "engine", Result: drill.Pass, Detail: "pg_amcheck: 10 relations checked"},
					{Name: "user:open-invoices", Result: drill.Pass, Detail: userDetail},
				}},
			{Name: "airflow", Kind: "airflow", Result: drill.Warn, Scratch: "/tmp/coffer-drill-5e1c0a/airflow",
				BytesRead: 209_715_200, Timings: drill.Timings{Fetch: secs(3.2), Decrypt: secs(1.4), Restore: secs(14.9), Check: secs(4.3), Total: secs(26.8)},
				Checks: []drill.Check{
					{Name: "restored", Result: drill.Pass, Detail: "metadata database, dags folder, airflow.cfg"},
					{Name: "fingerprints", Result: drill.Pass, Detail: "row counts of 41 tables equal"},
					{Name: "alembic", Result: drill.Pass, Detail: "revision 5f2621c13b39 is Airflow 2.10.3"},
					{Name: "fernet", Result: drill.Pass, Detail: "312 encrypted values decrypt with the snapshot's Fernet keys"},
					{Name: "dag-files", Result: drill.Pass, Detail: "27 DAG files referenced, all present"},
					{Name: "git-head", Result: drill.Warn, Detail: "the dags folder is not a git checkout: no commit recorded"},
					{Name: "owner-writes", Result: drill.Pass, Detail: "role airflow can write to the restored tables"},
				}},
			{Name: "documents", Kind: "dir", Result: drill.Pass, Scratch: "/tmp/coffer-drill-5e1c0a/documents",
				BytesRead: 5_033_165, Timings: drill.Timings{Fetch: secs(0.6), Decrypt: secs(0.2), Restore: secs(0.9), Check: secs(0.4), Total: secs(2.3)},
				Checks: []drill.Check{
					{Name: "files", Result: drill.Pass, Detail: "1,204 files, 4.8 MiB, hashes match the catalog"},
				}},
		},
	}
	r.Throughput = float64(r.BytesRead) / r.RTO.Duration().Seconds()
	for i := range r.Sources {
		for _, c := range r.Sources[i].Checks {
			r.Sources[i].Result = drill.Worse(r.Sources[i].Result, c.Result)
		}
		r.Result = drill.Worse(r.Result, r.Sources[i].Result)
	}
	return r
}
