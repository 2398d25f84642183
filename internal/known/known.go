// Package known is coffer's known-repositories store: what a client
// remembers about every repository it opened, as ssh's known_hosts
// remembers host keys. For each repository id it keeps the owner public
// key, the highest config seq seen and the newest snapshots seen, in one
// 0600 JSON file per repository:
//
//	$COFFER_STATE_DIR/<repository id>.json
//	(default $XDG_STATE_HOME/coffer, else ~/.local/state/coffer)
//
// A record is written under an flock on <repository id>.lock beside it,
// merged with the record as stored then (see [Store.update]), so that
// coffer processes running at once do not undo each other's updates.
//
// Opening a repository through the store pins it: the owner key comes
// from the caller (a flag, or the "# coffer owner:" line of a key file)
// or from the store; without either the open is refused. A pin that
// differs from the one remembered is refused ("owner key changed"); a
// newest config older than one seen is a rollback; a newest snapshot seen
// before that is gone is reported by the caller (see [Opened.Vanished]).
package known

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// Store is a folder of records, one per repository.
type Store struct {
	Dir string
}

// DefaultDir returns the store's folder: COFFER_STATE_DIR, else
// XDG_STATE_HOME/coffer, else ~/.local/state/coffer. getenv reads the
// environment (nil: none).
func DefaultDir(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if d := getenv("COFFER_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "coffer"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", errors.New("no folder for the known-repositories store: HOME is not set")
		}
	}
	return filepath.Join(home, ".local", "state", "coffer"), nil
}

// Record is what the store remembers about one repository.
type Record struct {
	Repository string `json:"repository"`
	// Owner is the owner public key the repository is pinned to.
	Owner string `json:"owner"`
	// ConfigSeq is the highest config seq seen.
	ConfigSeq int64 `json:"config_seq"`
	// Snapshots are the newest snapshots seen (the heads), and those that
	// vanished, which stay until someone acknowledges it.
	Snapshots []Snapshot `json:"snapshots"`
	// Location is where the repository was last opened.
	Location string    `json:"location"`
	Updated  time.Time `json:"updated"`
}

// Snapshot is a snapshot the client saw.
type Snapshot struct {
	ID string `json:"id"`
	// Time is the snapshot's time; Seen when the client first saw it.
	Time time.Time `json:"time"`
	Seen time.Time `json:"seen"`
}

// Path returns the file of repository id's record.
func (s *Store) Path(id string) string { return filepath.Join(s.Dir, id+".json") }

func validID(id string) bool {
	return len(id) == 64 && strings.Trim(id, "0123456789abcdef") == ""
}

// DirModeError reports a store folder that group or others may write:
// they could swap the records (and so the pins) in it.
type DirModeError struct {
	Dir  string
	Mode fs.FileMode
}

func (e *DirModeError) Error() string {
	return fmt.Sprintf("known repositories: the folder %s is writable by group or others (mode %04o): anyone who can write it can change the owner keys it pins; chmod 700 it",
		e.Dir, e.Mode.Perm())
}

// checkDir refuses a store folder that group or others may write. A
// folder that does not exist passes (Put makes it 0700).
func (s *Store) checkDir() error {
	fi, err := os.Stat(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("known repositories: %s is not a folder", s.Dir)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0 {
		return &DirModeError{Dir: s.Dir, Mode: fi.Mode()}
	}
	return nil
}

// Get returns the record of repository id, or nil if there is none. A
// record that group or others may write is refused, as a key file would
// be, and so is a store folder that they may write.
func (s *Store) Get(id string) (*Record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("invalid repository id")
	}
	if err := s.checkDir(); err != nil {
		return nil, err
	}
	p := s.Path(id)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err := keys.CheckPrivate(p); err != nil {
		return nil, fmt.Errorf("known repositories: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("known repositories: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil || r.Repository != id {
		return nil, fmt.Errorf("known repositories: %s is damaged; remove it to pin the repository again", p)
	}
	return &r, nil
}

// Put writes r atomically (0600; the folder 0700).
func (s *Store) Put(r *Record) error {
	if !validID(r.Repository) {
		return fmt.Errorf("invalid repository id")
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	if err := s.checkDir(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.Dir, "."+r.Repository+".tmp-*")
	if err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("known repositories: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("known repositories: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	if err := os.Rename(tmp, s.Path(r.Repository)); err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	return nil
}

// update merges rec into the stored record of its repository and writes
// the result, under an flock on <dir>/<id>.lock so that two coffer
// processes do not lose each other's updates: the stored record is read
// again under the lock; the merge keeps the highest config seq, and the
// union of the snapshots, but for those that named (the seen lists of the
// manifests just read) says were superseded. A stored record pinned to
// another owner is refused. rec is set to the merged record.
func (s *Store) update(rec *Record, named map[string]bool) error {
	if !validID(rec.Repository) {
		return fmt.Errorf("invalid repository id")
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	if err := s.checkDir(); err != nil {
		return err
	}
	lf, err := os.OpenFile(filepath.Join(s.Dir, rec.Repository+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("known repositories: %w", err)
	}
	defer lf.Close() // releases the lock
	if err := lockFile(lf); err != nil {
		return fmt.Errorf("known repositories: lock: %w", err)
	}
	cur, err := s.Get(rec.Repository)
	if err != nil {
		return err
	}
	if cur != nil {
		if cur.Owner != "" && rec.Owner != "" && cur.Owner != rec.Owner {
			remembered, err1 := keys.ParseOwnerPublic(cur.Owner)
			given, err2 := keys.ParseOwnerPublic(rec.Owner)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("known repositories: %s names another owner key", s.Path(rec.Repository))
			}
			return &OwnerChangedError{Repository: rec.Repository, Record: s.Path(rec.Repository), Remembered: remembered, Given: given,
				GivenFrom: "another coffer process"}
		}
		rec.ConfigSeq = max(rec.ConfigSeq, cur.ConfigSeq)
		have := map[string]bool{}
		for _, x := range rec.Snapshots {
			have[x.ID] = true
		}
		for _, x := range cur.Snapshots {
			if !have[x.ID] && !named[x.ID] {
				rec.Snapshots = append(rec.Snapshots, x)
				have[x.ID] = true
			}
		}
		sort.Slice(rec.Snapshots, func(i, j int) bool { return rec.Snapshots[i].ID < rec.Snapshots[j].ID })
	}
	return s.Put(rec)
}

// OwnerChangedError is returned when the owner key given differs from the
// one the store remembers for the repository.
type OwnerChangedError struct {
	Repository string
	Record     string // the record's file
	Remembered keys.OwnerPublic
	Given      keys.OwnerPublic
	GivenFrom  string
}

func (e *OwnerChangedError) Error() string {
	return fmt.Sprintf("owner key changed: repository %s is pinned to owner %s, but %s names %s",
		repo.ShortID(e.Repository), e.Remembered.Fingerprint(), e.GivenFrom, e.Given.Fingerprint())
}

// OpenOptions are the keys an open holds.
type OpenOptions struct {
	// Pin is the owner public key the caller was given, and PinSource
	// where it came from (for messages). Nil: the store's.
	Pin       keys.OwnerPublic
	PinSource string
	// Signing, OwnerKey and Identities are as in repo.OpenOptions.
	Signing    *keys.SigningKey
	OwnerKey   *keys.OwnerKey
	Identities []age.Identity
}

// Opened is a repository opened through the store, with its record.
type Opened struct {
	Repo   *repo.Repository
	Record *Record
	// PinSource says where the pin came from.
	PinSource string
	store     *Store
}

// Open opens the repository in st pinned to o.Pin or, without one, to the
// owner the store remembers; it refuses a pin that differs from the
// remembered one and a newest config older than one seen before, and
// remembers the owner and the config seq.
func (s *Store) Open(ctx context.Context, st storage.Store, o OpenOptions) (*Opened, error) {
	peek, err := repo.PeekConfig(ctx, st)
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		// No config object parses: repo.Open below says why.
		peek, err = &repo.Config{}, nil
	}
	if err != nil {
		return nil, err
	}
	pin, from := o.Pin, o.PinSource
	var rec *Record
	if validID(peek.ID) {
		if rec, err = s.Get(peek.ID); err != nil {
			return nil, err
		}
	}
	if rec != nil {
		remembered, err := keys.ParseOwnerPublic(rec.Owner)
		if err != nil {
			return nil, fmt.Errorf("known repositories: %s: %v", s.Path(rec.Repository), err)
		}
		if pin == nil {
			pin, from = remembered, "the known-repositories store"
		} else if !pin.Equal(remembered) {
			return nil, &OwnerChangedError{Repository: rec.Repository, Record: s.Path(rec.Repository), Remembered: remembered, Given: pin, GivenFrom: from}
		}
	}
	var minSeq int64
	if rec != nil {
		minSeq = rec.ConfigSeq
	}
	r, err := repo.Open(ctx, st, repo.OpenOptions{Owner: pin, MinSeq: minSeq, Signing: o.Signing,
		OwnerKey: o.OwnerKey, Identities: o.Identities})
	if err != nil {
		return nil, err
	}
	if r.Config.ID != peek.ID {
		// The newest config object claimed another id than the newest
		// that verifies: check against that repository's record too.
		if rec, err = s.Get(r.Config.ID); err != nil {
			return nil, err
		}
		if rec != nil {
			if rec.Owner != pin.String() {
				remembered, _ := keys.ParseOwnerPublic(rec.Owner)
				return nil, &OwnerChangedError{Repository: rec.Repository, Record: s.Path(rec.Repository), Remembered: remembered, Given: pin, GivenFrom: from}
			}
			if r.Config.Seq < rec.ConfigSeq {
				return nil, &repo.IntegrityError{Object: repo.ConfigName(rec.ConfigSeq), Err: &repo.RollbackError{Newest: r.Config.Seq, Seen: rec.ConfigSeq}}
			}
		}
	}
	if rec == nil {
		rec = &Record{Repository: r.Config.ID}
	}
	rec.Owner = pin.String()
	rec.ConfigSeq = max(rec.ConfigSeq, r.Config.Seq)
	rec.Location = st.Location()
	rec.Updated = time.Now().UTC().Truncate(time.Second)
	if err := s.update(rec, nil); err != nil {
		return nil, err
	}
	return &Opened{Repo: r, Record: rec, PinSource: from, store: s}, nil
}

// Save writes the record again (after a config change).
func (o *Opened) Save() error {
	return o.save(nil)
}

// save merges the record into the stored one (see Store.update) and
// writes it; named are the snapshots superseded by manifests just read.
func (o *Opened) save(named map[string]bool) error {
	o.Record.ConfigSeq = max(o.Record.ConfigSeq, o.Repo.Config.Seq)
	return o.store.update(o.Record, named)
}

// VanishedError lists newest snapshots the client saw whose manifests are
// no longer in the repository: deleted, or a rollback of the bucket.
type VanishedError struct {
	Snapshots []Snapshot
}

func (e *VanishedError) Error() string {
	var s []string
	for _, v := range e.Snapshots {
		s = append(s, fmt.Sprintf("%s (of %s, seen %s)", repo.ShortID(v.ID), v.Time.Format(time.RFC3339), v.Seen.Format(time.RFC3339)))
	}
	word := "snapshot"
	if len(s) > 1 {
		word = "snapshots"
	}
	return fmt.Sprintf("%s %s seen before vanished from the repository (deleted, or the bucket was rolled back)", word, strings.Join(s, ", "))
}

// Vanished returns the remembered snapshots whose manifests no longer
// exist, as a *VanishedError, or nil.
func (o *Opened) Vanished(ctx context.Context) error {
	ids, err := o.Repo.SnapshotIDs(ctx)
	if err != nil {
		return err
	}
	exists := make(map[string]bool, len(ids))
	for _, id := range ids {
		exists[id] = true
	}
	// A snapshot forgotten on purpose (a tombstone that verifies) did
	// not vanish.
	forgotten, _, err := o.Repo.Forgotten(ctx)
	if err != nil {
		return err
	}
	for id := range forgotten {
		exists[id] = true
	}
	var gone []Snapshot
	for _, s := range o.Record.Snapshots {
		if !exists[s.ID] {
			gone = append(gone, s)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return &VanishedError{Snapshots: gone}
}

// Remember records the heads of ms (verified manifests the client read:
// those no other of them names in its seen list) as the newest snapshots
// seen, and saves the record. A snapshot remembered before is forgotten
// only when a manifest of ms names it as seen (a newer snapshot
// superseded it); so one that vanished, or whose manifest no longer
// verifies, stays and stays reported.
func (o *Opened) Remember(ms []*repo.Manifest) error {
	named := map[string]bool{}
	for _, m := range ms {
		for _, id := range m.Seen {
			named[id] = true
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	seen := map[string]Snapshot{}
	for _, s := range o.Record.Snapshots {
		if !named[s.ID] {
			seen[s.ID] = s
		}
	}
	for _, m := range heads(ms) {
		if _, ok := seen[m.ID]; !ok {
			seen[m.ID] = Snapshot{ID: m.ID, Time: m.Time, Seen: now}
		}
	}
	o.Record.Snapshots = o.Record.Snapshots[:0]
	for _, s := range seen {
		o.Record.Snapshots = append(o.Record.Snapshots, s)
	}
	sort.Slice(o.Record.Snapshots, func(i, j int) bool { return o.Record.Snapshots[i].ID < o.Record.Snapshots[j].ID })
	return o.save(named)
}

// heads returns the snapshots of ms that no other of them names in its
// seen list: the newest of each line of backups.
func heads(ms []*repo.Manifest) []*repo.Manifest {
	named := map[string]bool{}
	for _, m := range ms {
		for _, id := range m.Seen {
			named[id] = true
		}
	}
	var out []*repo.Manifest
	for _, m := range ms {
		if !named[m.ID] {
			out = append(out, m)
		}
	}
	return out
}
