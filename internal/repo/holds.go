package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// Two kinds of small public objects tell maintenance (forget and prune)
// what other processes are doing right now. They are plain JSON, not age
// files or signed documents: they hold only a snapshot or run id and
// times, all of which the manifests and listings show anyway, and a forged
// one can only make forget and prune keep more, for a while.
const (
	// HoldsPrefix holds holds/<random id>: a snapshot that a running
	// drill (or an operator) is using; forget and prune leave it alone
	// until the hold expires or is released.
	HoldsPrefix = "holds/"
	// RunningPrefix holds running/<run id>-<seq>: a backup announcing that
	// it runs. It writes a new marker (seq + 1, a later expiry) while it
	// runs, and prune never deletes an unreferenced object written after
	// the start of a backup that still runs.
	RunningPrefix = "running/"
)

// maxMarker bounds a hold or running marker.
const maxMarker = 64 << 10

// HoldRecord is the content of a hold object.
type HoldRecord struct {
	Version int `json:"version"`
	// Hold is the hold's id: holds/<Hold> holds the snapshot, a release
	// record holds/<Hold>.released-<nonce> (Released true) releases it. A
	// release is a record rather than a delete because in a bucket with
	// object lock neither object can be deleted before its retention ends.
	Hold     string    `json:"hold"`
	Snapshot string    `json:"snapshot"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
	// ReleaseSHA256 (in the hold) is the hex SHA-256 of a random 32-byte
	// release token that only the holding process knows; ReleaseToken (in
	// the release record) is the token, hex. Holds are not signed: anyone
	// who may write the bucket could write a release record, and only the
	// token tells the holder's from a forged one (HoldState).
	ReleaseSHA256 string `json:"release_sha256,omitempty"`
	ReleaseToken  string `json:"release_token,omitempty"`
}

// releasedSuffix ends the name of a hold's release record.
const releasedSuffix = ".released"

// Hold marks snapshot id as in use until ttl from now (a drill restoring
// it): forget does not forget it and prune does not remove its data while
// the hold is active. release writes a release record carrying the hold's
// release token, which only this process knows (best effort: a hold that
// could not be released expires); prune removes both. A hold needs only
// write access.
func (r *Repository) Hold(ctx context.Context, id string, ttl time.Duration) (release func(), err error) {
	if !validHex(id, 64) {
		return nil, fmt.Errorf("hold: %q is not a snapshot id", id)
	}
	if ttl <= 0 {
		return nil, errors.New("hold: the time to live must be positive")
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("hold: %w", err)
	}
	sum := sha256.Sum256(token)
	now := time.Now().UTC()
	hold := NewID()
	rec := HoldRecord{Version: 1, Hold: hold, Snapshot: id, Created: now, Expires: now.Add(ttl), ReleaseSHA256: hex.EncodeToString(sum[:])}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := PutObject(ctx, r.Store, HoldsPrefix+hold, b); err != nil {
		return nil, fmt.Errorf("hold snapshot %s: %w", ShortID(id), err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			rel := HoldRecord{Version: 1, Hold: hold, Snapshot: id, Created: now, Expires: time.Now().UTC(),
				Released: true, ReleaseToken: hex.EncodeToString(token)}
			// Best effort (an expired hold holds nothing either); prune
			// removes both objects.
			// A name of its own (objects are never replaced): one taken
			// by a forged record must not stop the release.
			if b, err := json.Marshal(rel); err == nil {
				_ = PutObject(dctx, r.Store, HoldsPrefix+hold+releasedSuffix+"-"+NewID()[:16], b)
			}
		})
	}, nil
}

// Holds lists the hold objects and release records: name → record. An
// object that does not parse is returned with a zero record (it holds
// nothing).
func (r *Repository) Holds(ctx context.Context) (map[string]HoldRecord, error) {
	out := map[string]HoldRecord{}
	err := r.readMarkers(ctx, HoldsPrefix, func(name string, b []byte, _ time.Time) {
		var h HoldRecord
		if json.Unmarshal(b, &h) != nil || !validHex(h.Snapshot, 64) {
			h = HoldRecord{}
		}
		out[name] = h
	})
	return out, err
}

// HoldState is what the hold objects say at a time (Holding).
type HoldState struct {
	// Held maps each held snapshot to the latest expiry of its active
	// holds.
	Held map[string]time.Time
	// Done are the objects that hold nothing any more, for prune to
	// remove: released and expired holds with their release records,
	// release records without a hold, and objects that do not parse.
	Done []string
	// Ignored are release records that release nothing, with the reason:
	// a token that does not hash to the hold's release_sha256 (forged, as
	// holds are not signed), or a hold without release_sha256 (written by
	// coffer before release tokens), which lasts until it expires.
	Ignored map[string]string
}

// Holding reads hs (Holds) at now, with skew the clock difference
// tolerated between hosts. A hold at holds/<id> is active until its expiry
// plus skew unless a release record holds/<id>.released-<nonce> carries
// the token whose SHA-256 the hold recorded; a release record without it
// releases nothing, and a hold that recorded no release_sha256 cannot be
// released, only expire.
func Holding(hs map[string]HoldRecord, now time.Time, skew time.Duration) HoldState {
	st := HoldState{Held: map[string]time.Time{}, Ignored: map[string]string{}}
	records := map[string][]string{} // hold id → the names of its release records
	for name := range hs {
		if id, ok := releaseOf(name); ok {
			records[id] = append(records[id], name)
		}
	}
	released := map[string]bool{}
	for id, names := range records {
		h, found := hs[HoldsPrefix+id]
		for _, name := range names {
			rel := hs[name]
			switch {
			case !found:
				st.Done = append(st.Done, name) // its hold is gone: prune removed it, or it was never there
			case h.Snapshot == "":
				// the hold does not parse: it goes below, with its records
			case !rel.Released:
				st.Ignored[name] = "it is not a release record: it releases nothing"
			case h.ReleaseSHA256 == "":
				st.Ignored[name] = "its hold has no release_sha256 (written by an older coffer): it holds until it expires"
			case !tokenMatches(rel.ReleaseToken, h.ReleaseSHA256):
				st.Ignored[name] = "its token does not match the hold's release_sha256 (forged?): it releases nothing"
			default:
				released[id] = true
			}
		}
	}
	for name, h := range hs {
		if _, ok := releaseOf(name); ok {
			continue
		}
		id := strings.TrimPrefix(name, HoldsPrefix)
		if h.Snapshot == "" || released[id] || !h.Expires.Add(skew).After(now) {
			st.Done = append(st.Done, name)
			for _, rn := range records[id] {
				st.Done = append(st.Done, rn)
				delete(st.Ignored, rn)
			}
			continue
		}
		if h.Expires.After(st.Held[h.Snapshot]) {
			st.Held[h.Snapshot] = h.Expires
		}
	}
	sort.Strings(st.Done)
	return st
}

// releaseOf returns the hold id of a release record's name,
// holds/<id>.released (before release tokens) or holds/<id>.released-<nonce>.
func releaseOf(name string) (id string, ok bool) {
	id, suffix, ok := strings.Cut(strings.TrimPrefix(name, HoldsPrefix), releasedSuffix)
	return id, ok && (suffix == "" || suffix[0] == '-')
}

// tokenMatches reports whether the hex token hashes to the hex sum.
func tokenMatches(token, sum string) bool {
	t, err := hex.DecodeString(token)
	if err != nil || len(t) != 32 {
		return false
	}
	got := sha256.Sum256(t)
	want, err := hex.DecodeString(sum)
	return err == nil && subtle.ConstantTimeCompare(got[:], want) == 1
}

// Held returns the snapshots held at now (a hold whose expiry, plus the
// clock skew bound, is after now, and that its holder has not released),
// with the latest expiry of each.
func (r *Repository) Held(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	hs, err := r.Holds(ctx)
	if err != nil {
		return nil, err
	}
	return Holding(hs, now, MaxClockSkew).Held, nil
}

// RunningRecord is the content of a running marker.
type RunningRecord struct {
	Version int       `json:"version"`
	Run     string    `json:"run"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
	// Done marks the last record of a run: the backup has ended (written
	// rather than deleting the markers, which object lock may forbid).
	Done bool `json:"done,omitempty"`
	// Written is when the store says the marker was written (its
	// modification time, on the store's clock; not part of the JSON). A
	// backup host's clock may be off: a marker written less than
	// RunningTTL ago counts as live whatever its Expires says, and a run
	// started no later than its first marker was written.
	Written time.Time `json:"-"`
}

// RunningTTL is how long a running marker counts after it is written; a
// backup writes a new one every RunningTTL/3.
const RunningTTL = 10 * time.Minute

// doneSeq is the seq of a run's last marker, which says it has ended.
const doneSeq = 999999

// Announce writes a running marker for a backup starting now and renews it
// every ttl/3 until stop is called (ttl 0: RunningTTL). A backup calls it
// before it reads anything, so that a prune that lists markers after that
// keeps what the backup reads and writes. stop writes a last marker that
// says the backup ended (best effort: without it the markers expire);
// nothing is deleted, as a backup host need not have delete rights, and
// prune removes the markers. The first marker must be written: an error
// there fails the backup.
func Announce(ctx context.Context, st storage.Store, ttl time.Duration) (stop func(), err error) {
	if ttl <= 0 {
		ttl = RunningTTL
	}
	run := NewID()
	started := time.Now().UTC()
	write := func(seq int) error {
		name := fmt.Sprintf("%s%s-%06d", RunningPrefix, run, seq)
		rec := RunningRecord{Version: 1, Run: run, Started: started, Expires: time.Now().UTC().Add(ttl)}
		if seq == doneSeq {
			rec.Expires, rec.Done = time.Now().UTC(), true
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return PutObject(ctx, st, name, b)
	}
	if err := write(1); err != nil {
		return nil, fmt.Errorf("announce the backup: %w", err)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for seq := 2; ; seq++ {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				_ = write(seq) // a missed renewal shows as an expired marker: prune then waits for the grace period
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			ctx = dctx
			// A backup host may not delete: prune removes the markers.
			_ = write(doneSeq)
		})
	}, nil
}

// Running lists the running markers: name → record (a zero record for
// one that does not parse).
func (r *Repository) Running(ctx context.Context) (map[string]RunningRecord, error) {
	out := map[string]RunningRecord{}
	err := r.readMarkers(ctx, RunningPrefix, func(name string, b []byte, written time.Time) {
		var m RunningRecord
		if json.Unmarshal(b, &m) != nil {
			m = RunningRecord{}
		}
		m.Written = written
		out[name] = m
	})
	return out, err
}

// LiveRuns returns the runs that are live at now, each with its start. A
// run is live while one of its markers' expiry (the backup host's clock)
// plus the clock skew bound is after now and no done marker ended it, or
// one of its markers was written (the store's clock) less than RunningTTL
// plus the bound ago: a backup host whose clock is behind writes markers
// that look expired by their own times. Its start is the earliest of its
// markers' Started (the backup host's clock) and Written (the store's), so
// that a host clock that runs ahead does not move the start past what the
// backup wrote.
func LiveRuns(ms map[string]RunningRecord, now time.Time) map[string]time.Time {
	// A done marker ends its run only when it is stored under the run's
	// own done name and no marker of the run was written after it:
	// anyone who may write can forge one, and a backup that renews its
	// marker afterwards still runs.
	done := map[string]time.Time{}
	for name, m := range ms {
		if m.Done && name == fmt.Sprintf("%s%s-%06d", RunningPrefix, m.Run, doneSeq) {
			done[m.Run] = m.Written
		}
	}
	for _, m := range ms {
		if d, ok := done[m.Run]; ok && !m.Done && m.Written.After(d) {
			delete(done, m.Run)
		}
	}
	out := map[string]time.Time{}
	for _, m := range ms {
		if m.Run == "" || m.Done {
			continue
		}
		if _, ended := done[m.Run]; ended {
			continue
		}
		if m.Expires.Add(MaxClockSkew).After(now) ||
			(!m.Written.IsZero() && m.Written.Add(RunningTTL+MaxClockSkew).After(now)) {
			out[m.Run] = time.Time{}
		}
	}
	for _, m := range ms {
		start, ok := out[m.Run]
		if !ok {
			continue
		}
		for _, t := range []time.Time{m.Started, m.Written} {
			if !t.IsZero() && (start.IsZero() || t.Before(start)) {
				start = t
			}
		}
		out[m.Run] = start
	}
	return out
}

// OldestRunning returns the start of the oldest backup that is live at now
// (LiveRuns), and whether there is one.
func OldestRunning(ms map[string]RunningRecord, now time.Time) (time.Time, bool) {
	var oldest time.Time
	var found bool
	for _, start := range LiveRuns(ms, now) {
		if !found || start.Before(oldest) {
			oldest, found = start, true
		}
	}
	return oldest, found
}

func (r *Repository) readMarkers(ctx context.Context, prefix string, fn func(name string, b []byte, written time.Time)) error {
	var names []string
	written := map[string]time.Time{}
	if err := r.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		written[oi.Name] = oi.ModTime
		return nil
	}); err != nil {
		return fmt.Errorf("list %s: %w", strings.TrimSuffix(prefix, "/"), err)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := readAll(ctx, r.Store, n, maxMarker)
		if errors.Is(err, storage.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", n, err)
		}
		fn(n, bytes.TrimSpace(b), written[n])
	}
	return nil
}
