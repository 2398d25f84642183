package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
)

// ErrTagNeedsIdentity is returned when a tag filter is asked for without an
// identity: tags live in the private part, sealed to the recipients.
var ErrTagNeedsIdentity = errors.New("tags are sealed in each snapshot's private part: filtering by tag needs the identity")

// DamagedError is returned when some manifests do not verify: one of them
// may be the newest snapshot of a source, so forget and prune change
// nothing until verify has been run and the damage dealt with.
type DamagedError struct{ Errs []error }

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%d snapshot manifest(s) do not verify (first: %v); nothing was forgotten or removed, since a damaged one may be the newest snapshot of a source", len(e.Errs), e.Errs[0])
}

// Unwrap returns the first manifest's error.
func (e *DamagedError) Unwrap() error { return e.Errs[0] }

// NoMatchError is returned when ForgetOptions' filters select no snapshot:
// a source or tag that no snapshot has (mistyped, or the backups that
// should make it stopped) would otherwise apply the policy to nothing and
// succeed, which a scheduled forget would repeat unnoticed.
type NoMatchError struct {
	// Source and Tag are the filters.
	Source, Tag string
	// SourceFound: some snapshot holds Source (or Source is empty).
	SourceFound bool
	// Sources are the sources of the repository's snapshots; Tags the tags
	// of those that hold Source (all of them if Source is empty), when Tag
	// is given. Both sorted.
	Sources, Tags []string
}

func (e *NoMatchError) Error() string {
	list := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		return strings.Join(xs, ", ")
	}
	switch {
	case !e.SourceFound:
		return fmt.Sprintf("no snapshot holds source %s; sources in this repository: %s", e.Source, list(e.Sources))
	case e.Source != "":
		return fmt.Sprintf("no snapshot that holds source %s carries tag %s; their tags: %s", e.Source, e.Tag, list(e.Tags))
	}
	return fmt.Sprintf("no snapshot carries tag %s; tags in this repository: %s", e.Tag, list(e.Tags))
}

// appendNew appends s to xs unless xs holds it.
func appendNew(xs []string, s string) []string {
	if slices.Contains(xs, s) {
		return xs
	}
	return append(xs, s)
}

// ForgetOptions select the snapshots a policy applies to.
type ForgetOptions struct {
	// Source limits the policy to snapshots that hold this source.
	Source string
	// Tag limits the policy to snapshots carrying this tag; it needs an
	// identity (ErrTagNeedsIdentity).
	Tag string
	// DryRun decides and reports, and writes nothing.
	DryRun bool
	// Now is the time written into tombstones and against which holds are
	// checked; zero means time.Now.
	Now time.Time
}

// Snapshot is the decision about one snapshot.
type Snapshot struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Sources    []string  `json:"sources"`
	Incomplete bool      `json:"incomplete,omitempty"`
	// Group is the policy group: the snapshot's source names.
	Group string `json:"group"`
	Keep  bool   `json:"keep"`
	// Reasons name what keeps it: the policy's rules ("last", "daily",
	// "within 7d", ...), "newest complete snapshot of SOURCE", "held
	// until TIME".
	Reasons []string `json:"reasons,omitempty"`
}

// ForgetResult is what Forget decided and did.
type ForgetResult struct {
	Policy string `json:"policy"`
	// Snapshots are the snapshots the policy looked at (those that match
	// the filters), newest first within each group.
	Snapshots []Snapshot `json:"snapshots"`
	// Forgotten are the ids that got a tombstone (or would, in a dry run).
	Forgotten []string `json:"forgotten"`
	DryRun    bool     `json:"dry_run"`
}

// Forget applies p to the repository's snapshots and forgets those it does
// not keep: it writes for each a tombstone signed by the host key r was
// opened with (repo.Tombstone). The manifests and data stay until Prune.
//
// Whatever p says, Forget never forgets the newest complete snapshot of any
// source (the newest snapshot of a source of which no complete one exists),
// counted over all snapshots, not only those the filters select, nor a
// snapshot held by a running drill (repo.Repository.Hold).
//
// Snapshots are grouped by their set of source names (as restic groups by
// paths) and p is applied to each group separately. A manifest that does
// not verify stops Forget before anything is written (DamagedError); so
// do filters that select no snapshot (NoMatchError).
func Forget(ctx context.Context, r *repo.Repository, p Policy, opts ForgetOptions) (*ForgetResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if opts.Tag != "" && !r.HasIdentity() {
		return nil, ErrTagNeedsIdentity
	}
	if !opts.DryRun && r.Host() == nil {
		return nil, repo.ErrNoSigningKey
	}
	if !opts.DryRun {
		if err := r.CheckWriter(r.Host()); err != nil {
			return nil, err
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	ms, bad, err := r.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, &DamagedError{Errs: bad}
	}
	held, err := r.Held(ctx, now)
	if err != nil {
		return nil, err
	}
	protect := newestPerSource(ms, now)

	groups := map[string][]*repo.Manifest{}
	nomatch := &NoMatchError{Source: opts.Source, Tag: opts.Tag, SourceFound: opts.Source == ""}
	for _, m := range ms {
		for _, s := range m.Sources {
			nomatch.Sources = appendNew(nomatch.Sources, s.Name)
		}
		if opts.Source != "" && !slices.ContainsFunc(m.Sources, func(s repo.ManifestSource) bool { return s.Name == opts.Source }) {
			continue
		}
		nomatch.SourceFound = true
		if opts.Tag != "" {
			priv, err := r.ReadPrivate(ctx, m)
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", repo.ShortID(m.ID), err)
			}
			for _, t := range priv.Tags {
				nomatch.Tags = appendNew(nomatch.Tags, t)
			}
			if !slices.Contains(priv.Tags, opts.Tag) {
				continue
			}
		}
		g := groupKey(m)
		groups[g] = append(groups[g], m)
	}
	if (opts.Source != "" || opts.Tag != "") && len(groups) == 0 {
		sort.Strings(nomatch.Sources)
		sort.Strings(nomatch.Tags)
		return nil, nomatch
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	res := &ForgetResult{Policy: p.String(), DryRun: opts.DryRun, Forgotten: []string{}}
	var drop []*repo.Manifest
	for _, g := range keys {
		byID := map[string]*repo.Manifest{}
		items := make([]Item, 0, len(groups[g]))
		for _, m := range groups[g] {
			byID[m.ID] = m
			items = append(items, Item{ID: m.ID, Time: m.Time})
		}
		for _, d := range p.Apply(items) {
			m := byID[d.ID]
			s := Snapshot{ID: m.ID, Time: m.Time, Incomplete: m.Incomplete, Group: g, Reasons: d.Reasons}
			for _, src := range m.Sources {
				s.Sources = append(s.Sources, src.Name)
			}
			for _, src := range protect[m.ID] {
				s.Reasons = append(s.Reasons, "newest complete snapshot of "+src)
			}
			if until, ok := held[m.ID]; ok {
				s.Reasons = append(s.Reasons, "held until "+until.UTC().Format(time.RFC3339))
			}
			s.Keep = len(s.Reasons) > 0
			if !s.Keep {
				drop = append(drop, m)
				res.Forgotten = append(res.Forgotten, m.ID)
			}
			res.Snapshots = append(res.Snapshots, s)
		}
	}
	if opts.DryRun {
		return res, nil
	}
	for _, m := range drop {
		t, err := r.NewTombstone(m, p.String(), now)
		if err != nil {
			return res, err
		}
		if err := r.WriteTombstone(ctx, t); err != nil {
			return res, fmt.Errorf("forget snapshot %s: %w", repo.ShortID(m.ID), err)
		}
	}
	return res, nil
}

// groupKey is the policy group of m: its source names, sorted.
func groupKey(m *repo.Manifest) string {
	names := make([]string, len(m.Sources))
	for i, s := range m.Sources {
		names[i] = s.Name
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// newestPerSource returns, for every snapshot that is the newest complete
// snapshot of some source (or the newest snapshot of a source that has no
// complete one), the names of those sources. It counts twice and protects
// both: among the manifests not dated in the future (latest skips those,
// so one dated years ahead does not take the protection from the real
// newest), and among all of them (a source backed up only by a host whose
// clock runs ahead has no other).
func newestPerSource(ms []*repo.Manifest, now time.Time) map[string][]string {
	type best struct {
		m        *repo.Manifest
		complete bool
	}
	out := map[string][]string{}
	for _, present := range []bool{true, false} {
		newest := map[string]best{}
		for _, m := range ms {
			if present && m.InFuture(now) {
				continue
			}
			for _, s := range m.Sources {
				b, ok := newest[s.Name]
				better := !ok ||
					(!m.Incomplete && !b.complete) ||
					(!m.Incomplete == b.complete && (m.Time.After(b.m.Time) || m.Time.Equal(b.m.Time) && m.ID > b.m.ID))
				if better {
					newest[s.Name] = best{m: m, complete: !m.Incomplete}
				}
			}
		}
		for src, b := range newest {
			if !slices.Contains(out[b.m.ID], src) {
				out[b.m.ID] = append(out[b.m.ID], src)
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}
