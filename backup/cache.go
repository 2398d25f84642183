package backup

import (
	"bytes"
	"encoding/gob"
	"log/slog"
	"os"
	"path/filepath"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// The change cache lets a folder backup skip reading files whose size,
// mtime, ctime and inode are unchanged since the last backup, reusing their
// chunks. It lives on the backup host, age-encrypted to the repository's
// index key (so it is no plaintext on disk, and only the signing-key holder
// reads it), one file per repository: CacheDir/<repo id>/changes.age.

// fileKey is a file's state; the cache is gob-encoded by field name.
type fileKey = source.FileState

type cacheRec struct {
	Key    fileKey      `json:"key"`
	SHA256 string       `json:"sha256"`
	Chunks []cacheChunk `json:"chunks"`
}

type cacheChunk struct {
	ID     repo.ChunkID `json:"id"`
	Pack   string       `json:"p"`
	Offset int64        `json:"o"`
	Length int64        `json:"l"`
	Raw    int64        `json:"r"`
	Zstd   bool         `json:"z,omitempty"`
}

type changeCache struct {
	path     string
	identity *age.X25519Identity
	known    map[repo.ChunkID]loc
	old      map[string]map[string]cacheRec
}

// loadCache reads the cache; known is the loaded index, which only holds
// chunks whose pack is present at its recorded size.
func loadCache(dir, repoID string, secrets *keys.Derived, known map[repo.ChunkID]loc, log *slog.Logger) *changeCache {
	if dir == "" {
		return nil
	}
	c := &changeCache{path: filepath.Join(dir, repoID, "changes.age"), identity: secrets.IndexIdentity,
		known: known, old: map[string]map[string]cacheRec{}}
	ct, err := os.ReadFile(c.path)
	if err != nil {
		if !os.IsNotExist(err) {
			log.Warn("change cache unreadable; reading every file", "err", err)
		}
		return c
	}
	if err := unsealGob(ct, &c.old, c.identity); err != nil {
		log.Warn("change cache damaged; reading every file", "err", err)
		c.old = map[string]map[string]cacheRec{}
	}
	return c
}

// lookup returns the chunks of an unchanged file when the index still
// holds every one of them where the cache says (so its pack is present,
// at the size the index recorded).
func (c *changeCache) lookup(source, path string, k fileKey) (fileRec, bool) {
	if c == nil {
		return fileRec{}, false
	}
	cr, ok := c.old[source][path]
	if !ok || cr.Key != k {
		return fileRec{}, false
	}
	rec := fileRec{entry: repo.Entry{Size: k.Size, SHA256: cr.SHA256}}
	for _, ch := range cr.Chunks {
		l, ok := c.known[ch.ID]
		if !ok || l.pack.sha != ch.Pack || l.offset != ch.Offset || l.length != ch.Length {
			return fileRec{}, false
		}
		rec.locs = append(rec.locs, idLoc{id: ch.ID, loc: l})
	}
	return rec, true
}

// save writes the cache of this backup's files, read back from the spill
// (the records with a file state); called after the manifest is written,
// when every pack has its name.
func (c *changeCache) save(log *slog.Logger, sources []*sourceWriter, sp *spill) {
	if c == nil {
		return
	}
	// Sources not backed up this time keep their records, so separate
	// jobs per source against one repository all benefit.
	out := map[string]map[string]cacheRec{}
	backedUp := map[string]bool{}
	for _, sw := range sources {
		backedUp[sw.name] = true
	}
	for src, files := range c.old {
		if !backedUp[src] {
			out[src] = files
		}
	}
	c.old = nil // no longer needed: let it go before the new map grows
	err := c.fill(out, sources, sp)
	var ct []byte
	if err == nil {
		ct, err = sealGob(out, c.identity.Recipient())
	}
	if err == nil {
		err = writeFileAtomic(c.path, ct)
	}
	if err != nil {
		log.Warn("could not save the change cache; the next backup reads every file", "err", err)
	}
}

// fill adds the records of the sources just backed up to out.
func (c *changeCache) fill(out map[string]map[string]cacheRec, sources []*sourceWriter, sp *spill) error {
	next, err := sp.records()
	if err != nil {
		return err
	}
	for _, sw := range sources {
		files := map[string]cacheRec{}
		out[sw.name] = files
		for range sw.count {
			rec, err := next()
			if err != nil {
				return err
			}
			if rec.State == nil {
				continue
			}
			cr := cacheRec{Key: *rec.State, SHA256: rec.Entry.SHA256}
			for _, l := range rec.Locs {
				cr.Chunks = append(cr.Chunks, cacheChunk{ID: l.ID, Pack: sp.pack(l).sha, Offset: l.Offset,
					Length: l.Length, Raw: l.Raw, Zstd: l.Zstd})
			}
			files[rec.Entry.Path] = cr
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := bytes.NewReader(data).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// The cache is gob, not JSON: it is the backup host's own file, read and
// written by every backup, and gob is several times faster for it.
func sealGob(v any, r age.Recipient) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return repo.Encrypt(repo.Compress(nil, b.Bytes()), r)
}

func unsealGob(ct []byte, v any, id age.Identity) error {
	z, err := repo.Decrypt(ct, id)
	if err != nil {
		return err
	}
	plain, err := repo.DecompressDocument(z)
	if err != nil {
		return err
	}
	return gob.NewDecoder(bytes.NewReader(plain)).Decode(v)
}
