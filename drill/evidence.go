package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// This file keeps a drill's evidence in the repository (doc/design.md,
// section 6.2): the full report sealed to the recipients
// (drill-reports/<sha256>) and its public summary signed by the drill
// host's key (drills/<id>), which lists the history without any key.

// ErrNoSigningKey is returned by Save when the repository was opened
// without a host signing key: the summary could not be signed, and nothing
// was stored.
var ErrNoSigningKey = errors.New("no signing key: a drill's evidence is stored in the repository with a summary signed by an authorised host key")

// ErrNoDrill is returned when no drill record matches an id.
var ErrNoDrill = errors.New("no such drill")

// ErrBadID is returned by Save for a report whose id cannot name an
// object: it must be NewID's (64 random hex digits).
var ErrBadID = errors.New("drill id is not 64 lowercase hex digits (drill.NewID)")

// NewID returns a fresh random drill id.
func NewID() string { return repo.NewID() }

// Entry is one drill of the history: its signed public summary, who signed
// it and where its full report is.
type Entry struct {
	Summary
	// Signer is the host key that signed the summary
	// (coffer-signing-pub-v1:...).
	Signer string `json:"signer"`
	// Report is the object that holds the sealed full report.
	Report string `json:"report"`
	// ReportMissing is set when the report object is gone or replaced
	// (History also returns the error naming it).
	ReportMissing bool `json:"report_missing,omitempty"`

	record *repo.DrillRecord
}

// Save stores report in the repository: sealed to the repository's
// recipients (and data key), then a summary signed by the host key r was
// opened with. The host key must be authorised by the config. Saving the
// same report twice is no error (objects are content-named or
// create-if-absent, and an identical write counts as done).
func Save(ctx context.Context, r *repo.Repository, report *Report) error {
	sk := r.Host()
	if sk == nil {
		return ErrNoSigningKey
	}
	if err := r.CheckWriter(sk); err != nil {
		return err
	}
	if !repo.ValidDrillID(report.ID) {
		return fmt.Errorf("%w: %q", ErrBadID, report.ID)
	}
	if report.Snapshot != "" && !repo.ValidDrillID(report.Snapshot) {
		return fmt.Errorf("drill %s: snapshot %q is not a snapshot id", repo.ShortID(report.ID), report.Snapshot)
	}
	if report.Started.IsZero() {
		return fmt.Errorf("drill %s: no start time", repo.ShortID(report.ID))
	}
	recipients, err := r.Recipients()
	if err != nil {
		return err
	}
	ref, err := repo.PutDrillReport(ctx, r.Store, report, recipients...)
	if err != nil {
		return fmt.Errorf("store the report of drill %s: %w", repo.ShortID(report.ID), err)
	}
	s := report.Summary()
	rec := &repo.DrillRecord{
		Version:   repo.Version,
		ID:        s.ID,
		Repo:      r.Config.ID,
		ConfigSeq: r.Config.Seq,
		Signer:    sk.Public().String(),
		Snapshot:  s.Snapshot,
		Started:   s.Started.UTC(),
		Result:    string(s.Result),
		RTO:       s.RTO.Duration().Seconds(),
		Report:    ref,
	}
	err = repo.WriteDrill(ctx, r.Store, rec, sk)
	if errors.Is(err, storage.ErrExists) {
		// Saved before (a retry): the summary there must be this drill's,
		// signed by this host. The report just written (age encrypts
		// with fresh randomness) stays unreferenced.
		prev, rerr := r.ReadDrill(ctx, rec.ID)
		if rerr == nil && prev.Signer == rec.Signer && entryOf(prev).Summary.same(s) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("store the summary of drill %s: %w", repo.ShortID(report.ID), err)
	}
	return nil
}

// same reports whether two summaries describe the same drill (the RTO to
// the millisecond: the signed summary keeps seconds as a float).
func (s Summary) same(o Summary) bool {
	d := s.RTO.Duration() - o.RTO.Duration()
	return s.ID == o.ID && s.Snapshot == o.Snapshot && s.Started.Equal(o.Started) && s.Result == o.Result &&
		d < time.Millisecond && d > -time.Millisecond
}

func entryOf(d *repo.DrillRecord) Entry {
	return Entry{
		Summary: Summary{ID: d.ID, Snapshot: d.Snapshot, Started: d.Started, Result: Result(d.Result),
			RTO: Seconds(time.Duration(d.RTO * float64(time.Second)))},
		Signer: d.Signer,
		Report: d.Report.Name,
		record: d,
	}
}

// History reads the drill history, oldest first, without any key: every
// summary under drills/ whose signature verifies against a host key the
// pinned config authorises, with its report object checked for presence
// and size. A summary that does not verify (forged, tampered with, signed
// by an unknown or revoked key, replayed under another name) is left out
// and returned as an error naming it; a summary whose report is missing or
// replaced is listed, marked ReportMissing, and returned as an error too.
// The errors are *repo.IntegrityError.
func History(ctx context.Context, r *repo.Repository) ([]Entry, []error, error) {
	recs, bad, err := r.Drills(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Entry, 0, len(recs))
	for _, d := range recs {
		e := entryOf(d)
		if err := r.CheckDrillReport(ctx, d); err != nil {
			var ie *repo.IntegrityError
			if !errors.As(err, &ie) {
				return nil, nil, err
			}
			e.ReportMissing = true
			bad = append(bad, err)
		}
		out = append(out, e)
	}
	return out, bad, nil
}

// Find returns the id of the drill that ref names: "latest" (the newest by
// start), a full id or a unique prefix of one (at least 4 hex digits). It
// reads only names, except for "latest".
func Find(ctx context.Context, r *repo.Repository, ref string) (string, error) {
	if ref == "latest" {
		recs, _, err := r.Drills(ctx)
		if err != nil {
			return "", err
		}
		if len(recs) == 0 {
			return "", fmt.Errorf("%w: the repository holds no drill that verifies", ErrNoDrill)
		}
		return recs[len(recs)-1].ID, nil
	}
	if len(ref) < 4 || strings.Trim(ref, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: %q is not a drill id (hex digits, at least 4) or latest", ErrNoDrill, ref)
	}
	ids, _, err := r.DrillIDs(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, id := range ids {
		if strings.HasPrefix(id, ref) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%w: %s", ErrNoDrill, ref)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%w: %s is ambiguous: %d drills start with it", ErrNoDrill, ref, len(match))
}

// Load reads drill id's verified summary and decrypts its full report. It
// needs the identity (repo.ErrNoIdentity without one, a
// *repo.WrongIdentityError with another). The report must be the one the
// signed summary names (size and hash) and agree with it.
func Load(ctx context.Context, r *repo.Repository, id string) (*Report, Entry, error) {
	d, err := r.ReadDrill(ctx, id)
	if err != nil {
		return nil, Entry{}, err
	}
	e := entryOf(d)
	var rep Report
	if err := r.ReadDrillReport(ctx, d, &rep); err != nil {
		return nil, e, err
	}
	s := rep.Summary()
	if s.ID != d.ID || s.Snapshot != d.Snapshot || !s.Started.Equal(d.Started) || string(s.Result) != d.Result {
		return nil, e, &repo.IntegrityError{Object: d.Report.Name, Err: fmt.Errorf("the report does not match the signed summary of drill %s", repo.ShortID(d.ID))}
	}
	return &rep, e, nil
}
