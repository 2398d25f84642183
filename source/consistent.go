package source

import "time"

// ConsistentMeta is the metadata key under which a kind records the
// ConsistentPoint of its backup.
const ConsistentMeta = "consistent"

// ConsistentPoint says which instant a source's backup reflects, so that
// the sources of one snapshot can be compared: the skew between an
// Airflow metadata database and an invoice store is the window in which
// one may hold work the other does not know about.
type ConsistentPoint struct {
	// Time is when the source's snapshot was taken (a database's
	// transaction snapshot), or when reading began (a folder).
	Time time.Time `json:"time"`
	// End is when reading ended, for sources read over a span rather than
	// in one snapshot (folders): their contents are from between Time and
	// End.
	End *time.Time `json:"end,omitempty"`
	// LSN is PostgreSQL's WAL position read in the dump's snapshot.
	LSN string `json:"lsn,omitempty"`
	// Binlog is the MySQL/MariaDB binary log position of the dump's
	// snapshot ("file:position"), when the server writes a binary log.
	Binlog string `json:"binlog,omitempty"`
}

// Reporter is an optional capability of a Source, found by type assertion
// after its Backup returned nil: what the backup found out about the
// source beyond its bytes.
type Reporter interface {
	Report() Report
}

// Report is what a source's backup found out.
type Report struct {
	// Notes are lines for the backup's output ("snapshot holds the Fernet
	// key(s): 12 values checked").
	Notes []string
	// Unrestorable lists why the saved snapshot cannot restore the source
	// as it is (an Airflow deployment whose Fernet key is missing or does
	// not decrypt its values). Empty when nothing is known to be wrong.
	Unrestorable []string
}
