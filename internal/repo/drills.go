package repo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/storage"
)

// This file is a restore drill's evidence in the repository: the full
// report, sealed to the recipients under drill-reports/<sha256>, and a
// signed public summary under drills/<id> that names it, so that anyone
// holding the owner pin lists the drill history without any key.

// Drill evidence prefixes and the signed document kind of a summary.
const (
	DrillsPrefix       = "drills/"
	DrillReportsPrefix = "drill-reports/"
	KindDrill          = "drill"
)

// maxDrillRecord bounds a drill summary document, maxDrillReport a sealed
// report (reports hold one line per check: a few KiB to a few MiB).
const (
	maxDrillRecord = 1 << 20
	maxDrillReport = 256 << 20
)

// drillResults are the results a drill summary may carry (the drill
// package's Result values).
var drillResults = []string{"pass", "warn", "fail", "error"}

// DrillRecord is the signed public summary of one restore drill. Everything
// else the drill found (checks and their details, table and source names,
// timings per source, where it ran and who ran it) is in the sealed report
// it references.
type DrillRecord struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Repo    string `json:"repo"`
	// ConfigSeq and Signer are as in a manifest: the config the drill
	// host used and the host key that signed the record.
	ConfigSeq int64  `json:"config_seq"`
	Signer    string `json:"signer"`
	// Snapshot is the snapshot drilled; "" when the drill could not pick
	// one (its result is then "error").
	Snapshot string    `json:"snapshot"`
	Started  time.Time `json:"started"`
	Result   string    `json:"result"`
	// RTO is the recovery time in seconds.
	RTO float64 `json:"rto"`
	// Report is the sealed full report.
	Report ObjectRef `json:"report"`

	// docSHA256 is the SHA-256 of the document as read (ReadDrill).
	docSHA256 string
}

// DrillName is the object name of drill id's summary.
func DrillName(id string) string { return DrillsPrefix + id }

// ValidDrillID reports whether id can name a drill: 64 lowercase hex
// digits, random (NewID), like a snapshot id.
func ValidDrillID(id string) bool { return validHex(id, 64) }

// Validate checks the record's shape (not its signature).
func (d *DrillRecord) Validate() error {
	if d.Version != Version {
		return fmt.Errorf("unsupported drill record version %d", d.Version)
	}
	if !validHex(d.ID, 64) {
		return errors.New("invalid drill id")
	}
	if d.ConfigSeq < 1 {
		return errors.New("invalid config seq")
	}
	if d.Snapshot != "" && !validHex(d.Snapshot, 64) {
		return errors.New("invalid snapshot id")
	}
	if d.Started.IsZero() {
		return errors.New("no start time")
	}
	if !contains(drillResults, d.Result) {
		return fmt.Errorf("unknown result %q", d.Result)
	}
	if d.RTO < 0 || math.IsNaN(d.RTO) || math.IsInf(d.RTO, 0) {
		return errors.New("invalid recovery time")
	}
	if !validHex(d.Report.SHA256, 64) || d.Report.Name != DrillReportsPrefix+d.Report.SHA256 || d.Report.Size <= 0 {
		return errors.New("invalid report reference")
	}
	return nil
}

func (d *DrillRecord) signedBy() (string, string, string, int64) {
	return d.ID, d.Repo, d.Signer, d.ConfigSeq
}

// PutDrillReport seals a drill's report (any JSON value) to recipients and
// stores it under drill-reports/<sha256>.
func PutDrillReport(ctx context.Context, st storage.Store, report any, recipients ...age.Recipient) (ObjectRef, error) {
	return PutSealed(ctx, st, DrillReportsPrefix, report, recipients...)
}

// WriteDrill signs a drill record and writes it if no record of its id
// exists. Write the report it references first (PutDrillReport).
func WriteDrill(ctx context.Context, st storage.Store, d *DrillRecord, s Signer) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("drill record: %w", err)
	}
	doc, err := Sign(KindDrill, d, s)
	if err != nil {
		return err
	}
	return PutObject(ctx, st, DrillName(d.ID), doc)
}

// ReadDrill reads and verifies drill record id: signed by a host key that
// may sign manifests (as a manifest, see ReadManifest), well formed, stored
// under its own id, of this repository. Anything else is an IntegrityError
// naming the object.
func (r *Repository) ReadDrill(ctx context.Context, id string) (*DrillRecord, error) {
	var d DrillRecord
	sum, err := r.readHostSigned(ctx, KindDrill, DrillName(id), id, maxDrillRecord, func() hostSigned {
		d = DrillRecord{}
		return &d
	})
	if err != nil {
		return nil, err
	}
	d.docSHA256 = sum
	return &d, nil
}

// DrillIDs lists the ids of the drill records, and the names of objects
// under drills/ that are not named by an id.
func (r *Repository) DrillIDs(ctx context.Context) (ids, junk []string, err error) {
	ids, _, junk, err = r.listIDs(ctx, DrillsPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("list drills: %w", err)
	}
	return ids, junk, nil
}

// Drills reads every drill record, oldest first (by start). Records that do
// not verify, and objects under drills/ not named by an id, are returned as
// errors beside the good ones.
func (r *Repository) Drills(ctx context.Context) ([]*DrillRecord, []error, error) {
	ids, junk, err := r.DrillIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var bad []error
	for _, name := range junk {
		// Anyone who can write to the store chooses this name: quoted
		// unless plain, so that printing it cannot drive a terminal.
		bad = append(bad, integrity(quoteName(name), "not a drill record: its name is not an id (ignored)"))
	}
	var out []*DrillRecord
	for _, id := range ids {
		d, err := r.ReadDrill(ctx, id)
		if err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				bad = append(bad, err)
				continue
			}
			return nil, nil, err
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, bad, nil
}

// quoteName returns an object name as it is when it is plain printable
// ASCII, Go-quoted otherwise (control characters, escape sequences,
// invalid UTF-8).
func quoteName(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			return strconv.Quote(name)
		}
	}
	return name
}

// CheckDrillReport checks that d's report object is present with the
// size the record names (one Stat, no read): an IntegrityError naming it
// otherwise.
func (r *Repository) CheckDrillReport(ctx context.Context, d *DrillRecord) error {
	oi, err := r.Store.Stat(ctx, d.Report.Name)
	if errors.Is(err, storage.ErrNotExist) {
		return integrity(d.Report.Name, "missing: the full report of drill %s was deleted", ShortID(d.ID))
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", d.Report.Name, err)
	}
	if oi.Size != d.Report.Size {
		return integrity(d.Report.Name, "size %d, want %d (the report of drill %s was replaced)", oi.Size, d.Report.Size, ShortID(d.ID))
	}
	return nil
}

// ReadDrillReport reads d's sealed report, checked against the size and
// hash d records, and decrypts it into v. It needs the identity: a wrong
// one is a WrongIdentityError.
func (r *Repository) ReadDrillReport(ctx context.Context, d *DrillRecord, v any) error {
	if len(r.identities) == 0 {
		return ErrNoIdentity
	}
	if d.Report.Size > maxDrillReport {
		return integrity(d.Report.Name, "report of %d bytes exceeds the limit of %d", d.Report.Size, maxDrillReport)
	}
	ct, err := r.ReadObject(ctx, d.Report)
	if err != nil {
		return err
	}
	if err := Unseal(ct, v, r.identities...); err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return &WrongIdentityError{Object: d.Report.Name}
		}
		return integrity(d.Report.Name, "decrypt: %s", cleanMessage(err))
	}
	return nil
}
