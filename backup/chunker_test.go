package backup_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/restic/chunker"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
	dirkind "github.com/cofferhq/coffer/source/dir"
)

// TestBackupChunker: a repository made with the Rabin chunker (before
// gear-fastcdc-v1) is still backed up into with restic's chunker and its
// polynomial, and a new one with the keyed gear chunker: the chunk ids the
// index holds for a file are those of the file cut by the repository's
// chunker, computed here without coffer's backup.
func TestBackupChunker(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 9<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, alg := range []string{repo.ChunkerRabin, repo.ChunkerGear} {
		t.Run(alg, func(t *testing.T) {
			var opts []repo.InitOption
			if alg == repo.ChunkerRabin {
				opts = append(opts, repo.WithChunker(repo.ChunkerRabin))
			}
			tr := testrepo.New(t, opts...)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			r := tr.Host(t)
			if r.Config.Chunker.Algorithm != alg {
				t.Fatalf("repository chunks with %q", r.Config.Chunker.Algorithm)
			}
			if _, err := backup.Run(ctx, backup.Options{Repo: r, Signing: tr.Signing,
				Sources: []source.Source{&dirkind.Source{SourceName: "docs", Path: dir}}}); err != nil {
				t.Fatal(err)
			}
			r = tr.Host(t)
			s, err := r.Secrets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ms, _, err := r.Manifests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d, err := r.LoadDedup(ctx, s.IndexIdentity, ms)
			if err != nil {
				t.Fatal(err)
			}
			stored := map[repo.ChunkID]bool{}
			for _, p := range d.Packs {
				for _, c := range p.Chunks {
					stored[c.ID] = true
				}
			}
			idf, err := r.ChunkIDFunc(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var cuts [][]byte
			if alg == repo.ChunkerRabin {
				pol, err := r.Polynomial(ctx)
				if err != nil {
					t.Fatal(err)
				}
				c := chunker.NewWithBoundaries(bytes.NewReader(data), pol, repo.DefaultChunkMin, repo.DefaultChunkMax)
				c.SetAverageBits(repo.DefaultChunkAvgBits)
				for {
					ch, err := c.Next(nil)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					cuts = append(cuts, ch.Data)
				}
			} else {
				c := repo.NewGearChunker(repo.GearTable(s.PolySeed), r.Config.Chunker)
				c.Reset(bytes.NewReader(data))
				for {
					b, err := c.Next(nil)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					cuts = append(cuts, bytes.Clone(b))
				}
			}
			if len(cuts) < 5 {
				t.Fatalf("only %d chunks", len(cuts))
			}
			for i, c := range cuts {
				if !stored[idf(c)] {
					t.Fatalf("chunk %d of %d (%d bytes) as %s cuts it is not in the index", i, len(cuts), len(c), alg)
				}
			}
		})
	}
}
