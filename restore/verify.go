package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// Depth says how deeply Verify checks.
type Depth int

const (
	// Quick checks manifest signatures and the presence and size of every
	// referenced object.
	Quick Depth = iota
	// Read also reads every object and checks its ciphertext hash. It
	// needs no key but the signing public key.
	Read
	// Decrypt also decrypts every catalog and chunk and checks chunk ids
	// and per-file plaintext hashes. It needs the identity.
	Decrypt
)

// Problem is one integrity failure: the object and the snapshots it breaks.
type Problem struct {
	Object    string   `json:"object"`
	Error     string   `json:"error"`
	Snapshots []string `json:"snapshots,omitempty"`
}

// Report of a verify run.
type Report struct {
	Depth     string    `json:"depth"`
	Snapshots int       `json:"snapshots"`
	Objects   int       `json:"objects"`
	Bytes     int64     `json:"bytes"`
	Files     int       `json:"files,omitempty"`
	Problems  []Problem `json:"problems"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks the given snapshots (all when ids is empty) at depth.
// Integrity failures are collected in the report; an error is returned only
// when verification itself could not run (storage unreachable, no key).
func Verify(ctx context.Context, r *repo.Repository, ids []string, depth Depth) (*Report, error) {
	if depth == Decrypt && !r.HasIdentity() {
		return nil, repo.ErrNoIdentity
	}
	rep := &Report{Depth: [...]string{"quick", "read", "decrypt"}[depth]}
	var ms []*repo.Manifest
	if len(ids) == 0 {
		all, bad, err := r.Manifests(ctx)
		if err != nil {
			return nil, err
		}
		ms = all
		for _, err := range bad {
			rep.add(err, nil)
		}
	} else {
		for _, id := range ids {
			m, err := Resolve(ctx, r, id, time.Time{})
			if err != nil {
				var ie *repo.IntegrityError
				if errors.As(err, &ie) {
					rep.add(err, nil)
					continue
				}
				return nil, err
			}
			ms = append(ms, m)
		}
	}
	rep.Snapshots = len(ms)

	// Every object once, remembering which snapshots use it.
	users := map[string][]string{}
	refs := map[string]repo.ObjectRef{}
	for _, m := range ms {
		for _, ref := range m.Objects() {
			users[ref.Name] = append(users[ref.Name], m.ID)
			refs[ref.Name] = ref
		}
	}
	if len(ms) > 0 {
		// The secrets object serves every snapshot: without it an
		// identity holder cannot check chunk ids.
		sec := r.Config.Secrets
		refs[sec.Name] = sec
		for _, m := range ms {
			users[sec.Name] = append(users[sec.Name], m.ID)
		}
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	broken := map[string]bool{}
	for _, n := range names {
		ref := refs[n]
		rep.Objects++
		if err := checkObject(ctx, r, ref, depth >= Read); err != nil {
			var ie *repo.IntegrityError
			if !errors.As(err, &ie) {
				return nil, err
			}
			rep.add(err, users[n])
			broken[n] = true
			continue
		}
		rep.Bytes += ref.Size
	}
	if depth < Decrypt {
		return rep, nil
	}
	for _, m := range ms {
		if broken[m.Catalog.Name] {
			continue
		}
		if err := verifyContents(ctx, r, m, rep, broken); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func (rep *Report) add(err error, snaps []string) {
	obj := "?"
	var ie *repo.IntegrityError
	if errors.As(err, &ie) {
		obj = ie.Object
		err = ie.Err
	}
	short := make([]string, len(snaps))
	for i, s := range snaps {
		short[i] = repo.ShortID(s)
	}
	for i := range rep.Problems {
		if p := &rep.Problems[i]; p.Object == obj {
			// The same object breaks one more snapshot.
			for _, s := range short {
				if !slices.Contains(p.Snapshots, s) {
					p.Snapshots = append(p.Snapshots, s)
				}
			}
			return
		}
	}
	rep.Problems = append(rep.Problems, Problem{Object: obj, Error: err.Error(), Snapshots: short})
}

func checkObject(ctx context.Context, r *repo.Repository, ref repo.ObjectRef, read bool) error {
	if read {
		_, err := r.ReadObject(ctx, ref)
		return err
	}
	oi, err := r.Store.Stat(ctx, ref.Name)
	if errors.Is(err, storage.ErrNotExist) {
		return &repo.IntegrityError{Object: ref.Name, Err: errors.New("missing")}
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", ref.Name, err)
	}
	if oi.Size != ref.Size {
		return &repo.IntegrityError{Object: ref.Name, Err: fmt.Errorf("size %d, want %d", oi.Size, ref.Size)}
	}
	return nil
}

// verifyContents decrypts a snapshot's catalog and reads every file back,
// checking every chunk's id and every file's hash.
func verifyContents(ctx context.Context, r *repo.Repository, m *repo.Manifest, rep *Report, broken map[string]bool) error {
	s, err := Load(ctx, r, m)
	if err != nil {
		var ie *repo.IntegrityError
		if errors.As(err, &ie) {
			rep.add(err, []string{m.ID})
			return nil
		}
		return err
	}
	cr, err := r.NewChunkReader(ctx, m)
	if err != nil {
		return err
	}
	for _, sc := range s.Catalog.Sources {
		// Every source must restore: valid paths, each listed once,
		// parents before children, and the source's hash over the
		// entries' exact bytes. Nothing is written.
		if err := sc.CheckRestorable(); err != nil {
			rep.add(&repo.IntegrityError{Object: m.Catalog.Name, Err: err}, []string{m.ID})
		}
		for i := range sc.Entries {
			e := &sc.Entries[i]
			if e.Type != "file" {
				continue
			}
			rep.Files++
			if err := copyChunks(ctx, s, cr, e, io.Discard); err != nil {
				var ie *repo.IntegrityError
				if !errors.As(err, &ie) {
					return err
				}
				if !broken[ie.Object] {
					rep.add(err, []string{m.ID})
				}
			}
		}
	}
	return nil
}
