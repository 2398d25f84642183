package backup

import (
	"bytes"
	"encoding/gob"
	"log/slog"
	"os"
	"path/filepath"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/progress"
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
	// Meta is what the source stored with the item (a bucket object's
	// metadata; see source.ObjectTracker).
	Meta []byte `json:"meta,omitempty"`
}

type cacheChunk struct {
	ID     repo.ChunkID `json:"id"`
	Pack   string       `json:"p"`
	Offset int64        `json:"o"`
	Length int64        `json:"l"`
	Raw    int64        `json:"r"`
	Zstd   bool         `json:"z,omitempty"`
}

type pendingRec struct {
	key  fileKey
	rec  *fileRec
	meta []byte
}

type changeCache struct {
	path     string
	identity *age.X25519Identity
	known    map[repo.ChunkID]loc
	old      map[string]map[string]cacheRec
	pending  map[string]map[string]pendingRec
}

// loadCache reads the cache; known is the loaded index, which only holds
// chunks whose pack is present at its recorded size.
func loadCache(dir, repoID string, secrets *keys.Derived, known map[repo.ChunkID]loc, log *slog.Logger) *changeCache {
	if dir == "" {
		return nil
	}
	c := &changeCache{path: filepath.Join(dir, repoID, "changes.age"), identity: secrets.IndexIdentity,
		known: known, old: map[string]map[string]cacheRec{}, pending: map[string]map[string]pendingRec{}}
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

// lookupMeta returns the chunks of an unchanged file, and the metadata
// stored with it, when the index still holds every one of them where the
// cache says (so its pack is present, at the size the index recorded).
func (c *changeCache) lookupMeta(source, path string, k fileKey) (fileRec, []byte, bool) {
	if c == nil {
		return fileRec{}, nil, false
	}
	cr, ok := c.old[source][path]
	if !ok || cr.Key != k {
		return fileRec{}, nil, false
	}
	rec := fileRec{entry: repo.Entry{Size: k.Size, SHA256: cr.SHA256}}
	for _, ch := range cr.Chunks {
		l, ok := c.known[ch.ID]
		if !ok || l.pack.sha != ch.Pack || l.offset != ch.Offset || l.length != ch.Length {
			return fileRec{}, nil, false
		}
		rec.locs = append(rec.locs, idLoc{id: ch.ID, loc: l})
	}
	return rec, cr.Meta, true
}

// estimate is what the cache remembers of a source's files: their bytes
// and number, the size of its previous backup (zero when unknown).
func (c *changeCache) estimate(source string) progress.Counts {
	var n progress.Counts
	if c == nil {
		return n
	}
	for _, r := range c.old[source] {
		n.Bytes += r.Key.Size
		n.Files++
	}
	return n
}

func (c *changeCache) remember(source, path string, k fileKey, rec *fileRec, meta []byte) {
	if c == nil {
		return
	}
	if c.pending[source] == nil {
		c.pending[source] = map[string]pendingRec{}
	}
	c.pending[source][path] = pendingRec{key: k, rec: rec, meta: meta}
}

// save writes the cache of this backup's files; called after the manifest
// is written, when every pack has its name.
func (c *changeCache) save(log *slog.Logger) {
	if c == nil {
		return
	}
	// Sources not backed up this time keep their records, so separate
	// jobs per source against one repository all benefit.
	out := map[string]map[string]cacheRec{}
	for src, files := range c.old {
		if _, ok := c.pending[src]; !ok {
			out[src] = files
		}
	}
	for src, files := range c.pending {
		out[src] = map[string]cacheRec{}
		for path, pr := range files {
			cr := cacheRec{Key: pr.key, SHA256: pr.rec.entry.SHA256, Meta: pr.meta}
			for _, l := range pr.rec.locs {
				cr.Chunks = append(cr.Chunks, cacheChunk{ID: l.id, Pack: l.loc.pack.sha, Offset: l.loc.offset,
					Length: l.loc.length, Raw: l.loc.raw, Zstd: l.loc.zstd})
			}
			out[src][path] = cr
		}
	}
	ct, err := sealGob(out, c.identity.Recipient())
	if err == nil {
		err = writeFileAtomic(c.path, ct)
	}
	if err != nil {
		log.Warn("could not save the change cache; the next backup reads every file", "err", err)
	}
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
