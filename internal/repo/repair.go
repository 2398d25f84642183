package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/cofferhq/coffer/storage"
)

// This file is what a snapshot writer trusts to deduplicate against: the
// index objects that verified manifests reference, and signed repair
// records (written by `coffer repair`), which rebuild the index from the
// packs themselves and name the packs found damaged.

// RepairsPrefix holds repair records: repairs/<id>, signed by a host key.
const RepairsPrefix = "repairs/"

// KindRepair is the signed document kind of a repair record.
const KindRepair = "repair"

// maxIndexObject bounds one index object's ciphertext, whatever the
// manifest or repair record that references it says (an index lists about
// 115 bytes per chunk before compression: a GiB covers tens of millions of
// chunks).
const maxIndexObject = 1 << 30

// maxRepair bounds a repair record.
const maxRepair = 64 << 20

// Repair is a repair record: the index rebuilt from every pack that read,
// decrypted and checked chunk by chunk, and the packs that did not. Backups
// deduplicate against the newest record's index (plus the indexes of
// snapshots written after it) and never against a pack that any record
// names damaged, so that the chunks of a damaged pack are stored again.
type Repair struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Time    time.Time `json:"time"`
	// ConfigSeq and Signer are as in a manifest: the config the writer
	// used and the host key that signed the record.
	ConfigSeq int64  `json:"config_seq"`
	Signer    string `json:"signer"`
	// docSHA256 is the SHA-256 of the document as read (ReadRepair).
	docSHA256 string
	// Index is the rebuilt index object; its packs carry the time the
	// store listed for them when they were checked (IndexPack.ModTime).
	Index ObjectRef `json:"index"`
	// Checked is the number of packs checked.
	Checked int           `json:"checked"`
	Damaged []DamagedPack `json:"damaged"`
}

// DamagedPack is a pack a repair left out, and why.
type DamagedPack struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Error  string `json:"error"`
}

// RepairName is the object name of repair record id.
func RepairName(id string) string { return RepairsPrefix + id }

// Validate checks the record's shape (not its signature).
func (rp *Repair) Validate() error {
	if err := checkSignedHeader("repair record", "repair", rp.Version, rp.ID, rp.ConfigSeq); err != nil {
		return err
	}
	if !validHex(rp.Index.SHA256, 64) || rp.Index.Name != IndexPrefix+rp.Index.SHA256 || rp.Index.Size <= 0 {
		return errors.New("invalid index reference")
	}
	for _, d := range rp.Damaged {
		if !validHex(d.SHA256, 64) {
			return errors.New("invalid damaged pack")
		}
	}
	return nil
}

// WriteRepair signs a repair record and writes it if no record of its id
// exists.
func WriteRepair(ctx context.Context, st storage.Store, rp *Repair, s Signer) error {
	doc, err := Sign(KindRepair, rp, s)
	if err != nil {
		return err
	}
	return PutObject(ctx, st, RepairName(rp.ID), doc)
}

// ReadRepair reads and verifies repair record id: signed by a host key
// that may sign manifests (as a manifest, see ReadManifest), well formed,
// stored under its own id, of this repository.
func (r *Repository) ReadRepair(ctx context.Context, id string) (*Repair, error) {
	var rp Repair
	sum, err := r.readHostSigned(ctx, KindRepair, RepairName(id), id, maxRepair, func() hostSigned {
		rp = Repair{}
		return &rp
	})
	if err != nil {
		return nil, err
	}
	rp.docSHA256 = sum
	return &rp, nil
}

func (rp *Repair) signedBy() (string, string, string, int64) {
	return rp.ID, rp.Repo, rp.Signer, rp.ConfigSeq
}

// Repairs reads every repair record, oldest first. Records that do not
// verify are returned as errors beside the good ones; objects under
// repairs/ not named by an id are errors too.
func (r *Repository) Repairs(ctx context.Context) ([]*Repair, []error, error) {
	ids, _, junk, err := r.listIDs(ctx, RepairsPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("list repairs: %w", err)
	}
	var bad []error
	for _, name := range junk {
		bad = append(bad, integrity(name, "not a repair record: its name is not an id (ignored)"))
	}
	var out []*Repair
	for _, id := range ids {
		rp, err := r.ReadRepair(ctx, id)
		if err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) {
				bad = append(bad, err)
				continue
			}
			return nil, nil, err
		}
		out = append(out, rp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, bad, nil
}

// Dedup is what a backup may deduplicate against.
type Dedup struct {
	// Packs are the indexed packs present at their recorded size and not
	// named damaged by a repair record, with their chunks.
	Packs []IndexPack
	// Present is every pack the store lists, by SHA-256.
	Present map[string]storage.ObjectInfo
	// Damaged are the packs repair records left out; never trusted.
	Damaged map[string]bool
	// Vouched are the packs of the newest repair record's index, with the
	// time the store listed for each when the repair checked it.
	Vouched map[string]time.Time
	// Skipped says which manifests, repair records and index objects were
	// not used, and why (verify reports them as problems).
	Skipped []string
	// Retracted are packs LoadDedupFunc passed to its function from an
	// index object it then skipped (its content did not decode): not to
	// be deduplicated against.
	Retracted []string
}

// LoadDedup reads what a backup deduplicates against, with id (the index
// identity) and ms, the manifests that verified (Manifests): the index
// objects they reference, written
// after the newest verified repair record, and that record's rebuilt
// index, and the indexes of every verified repack record, less the packs
// such a record replaces. Index objects that no verified manifest or
// record references
// (written by anyone who can encrypt to the index key, an identity holder
// for one) are never read. An index object must match the size and hash
// its reference records. A pack's chunks are kept only when the pack is
// present with its recorded size and no repair record named it damaged.
//
// A backup starts here, so LoadDedup first removes what killed writers
// left (storage.CleanStale: temporary files, incomplete multipart
// uploads), as far as the store's credentials allow.
func (r *Repository) LoadDedup(ctx context.Context, id age.Identity, ms []*Manifest) (*Dedup, error) {
	return r.LoadDedupFunc(ctx, id, ms, nil)
}

// LoadDedupFunc is LoadDedup that passes each pack kept to each instead of
// listing it in Dedup.Packs (in batches of its chunks: each may be called
// several times for one pack, with the same SHA-256 and size), and reads each index object as a stream (its
// ciphertext, checked against its reference first, waits in an unlinked
// temporary file), so that no index is held whole in memory. An index
// object whose content turns out not to decode after some of its packs
// went to each is skipped like any other, and those packs are listed in
// Dedup.Retracted: the caller forgets them.
func (r *Repository) LoadDedupFunc(ctx context.Context, id age.Identity, ms []*Manifest, each func(*IndexPack) error) (*Dedup, error) {
	_, _ = storage.CleanStale(ctx, r.Store, storage.StaleAge) // best effort: a backup never fails for it
	d := &Dedup{Present: map[string]storage.ObjectInfo{}, Damaged: map[string]bool{}, Vouched: map[string]time.Time{}}
	err := r.Store.List(ctx, DataPrefix, func(oi storage.ObjectInfo) error {
		d.Present[oi.Name[strings.LastIndexByte(oi.Name, '/')+1:]] = oi
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	repairs, badRepairs, err := r.Repairs(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range badRepairs {
		d.Skipped = append(d.Skipped, e.Error())
	}
	var since time.Time
	var refs []ObjectRef
	if n := len(repairs); n > 0 {
		newest := repairs[n-1]
		since = newest.Time
		refs = append(refs, newest.Index)
		for _, rp := range repairs {
			for _, p := range rp.Damaged {
				d.Damaged[p.SHA256] = true
			}
		}
	}
	// Repack records: their indexes list the new packs, and the packs they
	// replace are no longer deduplicated against (a later prune deletes
	// them).
	repacks, badRepacks, err := r.Repacks(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range badRepacks {
		d.Skipped = append(d.Skipped, e.Error())
	}
	// A record's new packs are deduplicated against only when a listed
	// manifest may read from them (it lists a pack the record replaces,
	// directly or through earlier records): prune keeps them only then,
	// and deletes those of a record whose snapshots are all forgotten,
	// even while this backup runs (their tombstones may be older than it).
	reach := map[string]bool{}
	for _, m := range ms {
		for _, p := range m.Packs {
			reach[p.SHA256] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, rk := range repacks {
			for _, old := range rk.Replaces {
				if !reach[old.SHA256] {
					continue
				}
				for _, p := range rk.Packs {
					if !reach[p.SHA256] {
						reach[p.SHA256], changed = true, true
					}
				}
			}
		}
	}
	replaced := map[string]bool{}
	only := map[string]map[string]bool{} // a repack index: only the packs its record names
	for _, rk := range repacks {
		o := map[string]bool{}
		for _, p := range rk.Packs {
			if reach[p.SHA256] {
				o[p.SHA256] = true
			}
		}
		for _, p := range rk.Replaces {
			replaced[p.SHA256] = true
		}
		if len(o) > 0 {
			refs = append(refs, rk.Index)
			only[rk.Index.Name] = o
		}
	}
	for _, m := range ms {
		// The newest repair rebuilt everything before it from the packs.
		if !since.IsZero() && m.Time.Before(since) {
			continue
		}
		refs = append(refs, m.Indexes...)
	}
	seen := map[string]bool{}
	for i, ref := range refs {
		if seen[ref.Name] {
			continue
		}
		seen[ref.Name] = true
		var passed []string
		pack := func(ip *IndexPack) error {
			if i == 0 && !since.IsZero() && !ip.ModTime.IsZero() {
				d.Vouched[ip.SHA256] = ip.ModTime
			}
			if d.Damaged[ip.SHA256] || replaced[ip.SHA256] {
				return nil
			}
			if o, ok := only[ref.Name]; ok && !o[ip.SHA256] {
				return nil
			}
			if oi, ok := d.Present[ip.SHA256]; ok && oi.Size == ip.Size {
				if each == nil {
					d.Packs = append(d.Packs, *ip)
					return nil
				}
				passed = append(passed, ip.SHA256)
				return each(ip)
			}
			return nil
		}
		if each == nil {
			var ix *Index
			if ix, err = r.readIndex(ctx, ref, id); err == nil {
				for i := range ix.Packs {
					pack(&ix.Packs[i])
				}
			}
		} else {
			err = r.streamIndex(ctx, ref, id, pack)
		}
		if err != nil {
			var ie *IntegrityError
			if !errors.As(err, &ie) {
				return nil, err
			}
			d.Skipped = append(d.Skipped, err.Error())
			d.Retracted = append(d.Retracted, passed...)
			continue
		}
	}
	return d, nil
}

// streamIndex reads index object ref and passes its packs to each in
// order. The ciphertext is copied to an unlinked temporary file and
// checked against ref (size and SHA-256) before anything is decrypted.
func (r *Repository) streamIndex(ctx context.Context, ref ObjectRef, id age.Identity, each func(*IndexPack) error) error {
	if ref.Size > maxIndexObject {
		return integrity(ref.Name, "index object of %d bytes exceeds the limit of %d", ref.Size, maxIndexObject)
	}
	f, err := os.CreateTemp("", "coffer-index-*")
	if err != nil {
		return fmt.Errorf("read %s: temporary copy in %s (TMPDIR): %w", ref.Name, os.TempDir(), err)
	}
	os.Remove(f.Name())
	defer f.Close()
	rc, err := r.Store.Open(ctx, ref.Name, 0, -1)
	if errors.Is(err, storage.ErrNotExist) {
		return integrity(ref.Name, "missing")
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ref.Name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, ref.Size+1))
	rc.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", ref.Name, err)
	}
	if n != ref.Size {
		return integrity(ref.Name, "size %d, want %d", n, ref.Size)
	}
	if hex.EncodeToString(h.Sum(nil)) != ref.SHA256 {
		return integrity(ref.Name, "content hash does not match")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read %s: %w", ref.Name, err)
	}
	bad := func(err error) error { return integrity(ref.Name, "decrypt index: %s", cleanMessage(err)) }
	ar, err := age.Decrypt(bufio.NewReaderSize(f, 64<<10), id)
	if err != nil {
		return bad(err)
	}
	zr, err := zstd.NewReader(io.LimitReader(ar, maxDocument), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxDocument))
	if err != nil {
		return bad(err)
	}
	defer zr.Close()
	dec := json.NewDecoder(zr)
	if err := decodeIndexStream(dec, each); err != nil {
		var ie *IntegrityError
		if errors.As(err, &ie) || !isDecodeError(err) {
			return err
		}
		return bad(err)
	}
	// The rest (zstd padding) is read to the end, so that age checks the
	// last chunk.
	if _, err := io.Copy(io.Discard, io.MultiReader(dec.Buffered(), zr)); err != nil {
		return bad(err)
	}
	return nil
}

// errFromEach marks an error returned by each, not a decode error.
type errFromEach struct{ err error }

func (e errFromEach) Error() string { return e.err.Error() }
func (e errFromEach) Unwrap() error { return e.err }

func isDecodeError(err error) bool {
	var fe errFromEach
	return !errors.As(err, &fe)
}

// decodeIndexStream decodes an Index ({"version": N, "packs": [...]}) pack
// by pack, as json.Unmarshal would: other keys are ignored.
func decodeIndexStream(dec *json.Decoder, each func(*IndexPack) error) error {
	if err := wantDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		if !strings.EqualFold(key, "packs") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		if t, err := dec.Token(); err != nil {
			return err
		} else if t == nil {
			continue // null: no packs
		} else if d, ok := t.(json.Delim); !ok || d != '[' {
			return fmt.Errorf("index packs: not a list")
		}
		for dec.More() {
			if err := decodePackStream(dec, each); err != nil {
				return err
			}
		}
		if err := wantDelim(dec, ']'); err != nil {
			return err
		}
	}
	if err := wantDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("index: data after the document")
	}
	return nil
}

// indexBatch is how many chunks of a pack decodeIndexStream passes at
// once: a pack of tiny chunks lists about 80,000 (10 MB of JSON).
const indexBatch = 4096

// decodePackStream decodes one IndexPack and passes it to each in batches
// of its chunks, each batch with the pack's SHA-256 and size; the last
// call has its ModTime too (a pack of no chunks is passed once, empty).
// Chunks listed before the pack's SHA-256 and size are held until the
// pack's end.
func decodePackStream(dec *json.Decoder, each func(*IndexPack) error) error {
	if err := wantDelim(dec, '{'); err != nil {
		return err
	}
	var ip IndexPack
	var haveSum, haveSize bool
	var batch []IndexChunk
	pass := func() error {
		p := ip
		p.Chunks = batch
		if err := each(&p); err != nil {
			return errFromEach{err}
		}
		batch = batch[:0]
		return nil
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		switch {
		case strings.EqualFold(key, "sha256"):
			err, haveSum = dec.Decode(&ip.SHA256), true
		case strings.EqualFold(key, "size"):
			err, haveSize = dec.Decode(&ip.Size), true
		case strings.EqualFold(key, "mtime"):
			err = dec.Decode(&ip.ModTime)
		case strings.EqualFold(key, "chunks"):
			t, terr := dec.Token()
			if terr != nil {
				return terr
			}
			if t == nil {
				continue // null: no chunks
			}
			if d, ok := t.(json.Delim); !ok || d != '[' {
				return fmt.Errorf("index chunks: not a list")
			}
			for dec.More() {
				var c IndexChunk
				if err := dec.Decode(&c); err != nil {
					return err
				}
				batch = append(batch, c)
				if len(batch) >= indexBatch && haveSum && haveSize {
					if err := pass(); err != nil {
						return err
					}
				}
			}
			err = wantDelim(dec, ']')
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return err
		}
	}
	if err := wantDelim(dec, '}'); err != nil {
		return err
	}
	return pass()
}

func wantDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("index: want %q, got %v", want, t)
	}
	return nil
}

// readIndex reads the index object ref names, checked against ref's size
// and hash, and decrypts it with id.
func (r *Repository) readIndex(ctx context.Context, ref ObjectRef, id age.Identity) (*Index, error) {
	if ref.Size > maxIndexObject {
		return nil, integrity(ref.Name, "index object of %d bytes exceeds the limit of %d", ref.Size, maxIndexObject)
	}
	ct, err := r.ReadObject(ctx, ref)
	if err != nil {
		return nil, err
	}
	var ix Index
	if err := Unseal(ct, &ix, id); err != nil {
		return nil, integrity(ref.Name, "decrypt index: %s", cleanMessage(err))
	}
	return &ix, nil
}

// IndexPacks returns the packs (their SHA-256) that the index object ref
// lists, decrypted with the index key of the repository secrets (the
// host's, owner's or an identity's key opens them).
func (r *Repository) IndexPacks(ctx context.Context, ref ObjectRef) ([]string, error) {
	d, err := r.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	ix, err := r.readIndex(ctx, ref, d.IndexIdentity)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ix.Packs))
	for i, p := range ix.Packs {
		out[i] = p.SHA256
	}
	return out, nil
}
