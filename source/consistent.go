package source

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
