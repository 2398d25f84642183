package backup

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// The spill of finished files' records is encrypted on disk, leaves no
// name in the temporary folder, and reads back exactly, pack numbers
// resolved to the slots the records were written with.
func TestSpillEncryptedRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	sp, err := newSpill()
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	if sp.f == nil {
		t.Fatal("spill is in memory although TMPDIR is writable")
	}
	if names, _ := os.ReadDir(tmp); len(names) != 0 {
		t.Fatalf("spill left %d names in the temporary folder, want 0 (unlinked)", len(names))
	}
	slotA, slotB := &packSlot{}, &packSlot{}
	st := source.FileState{Size: 7, MTime: 1, CTime: 2, Ino: 3, Dev: 4}
	const secret = "invoices/ACME-secret-customer-0001.pdf"
	want := []*fileRec{
		{entry: repo.Entry{Path: secret, Type: "file", Size: 7, ModTime: time.Unix(1_700_000_000, 0).UTC(), SHA256: strings.Repeat("ab", 32)},
			locs: []idLoc{{id: repo.ChunkID{1}, loc: loc{pack: slotA, offset: 10, length: 5, raw: 7, zstd: true}},
				{id: repo.ChunkID{2}, loc: loc{pack: slotB, offset: 0, length: 3, raw: 3}}},
			state: &st},
		{entry: repo.Entry{Path: "invoices", Type: "dir"}},
	}
	for i := range 1000 { // more than one age chunk and bufio buffer
		want = append(want, &fileRec{entry: repo.Entry{Path: secret + strings.Repeat("x", i%50), Type: "file"},
			locs: []idLoc{{id: repo.ChunkID{byte(i)}, loc: loc{pack: slotB, offset: int64(i)}}}})
	}
	for _, r := range want {
		if err := sp.add(r); err != nil {
			t.Fatal(err)
		}
	}
	for pass := range 2 { // encodeCatalog reads it, then the change cache
		next, err := sp.records()
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			got, err := next()
			if err != nil {
				t.Fatalf("pass %d record %d: %v", pass, i, err)
			}
			if got.Entry.Path != w.entry.Path || got.Entry.SHA256 != w.entry.SHA256 || !got.Entry.ModTime.Equal(w.entry.ModTime) ||
				len(got.Locs) != len(w.locs) || (got.State == nil) != (w.state == nil) {
				t.Fatalf("pass %d record %d: got %+v, want %+v", pass, i, got, w)
			}
			for j, l := range got.Locs {
				if sp.pack(l) != w.locs[j].loc.pack || l.ID != w.locs[j].id || l.Offset != w.locs[j].loc.offset ||
					l.Zstd != w.locs[j].loc.zstd {
					t.Fatalf("pass %d record %d chunk %d: got %+v", pass, i, j, l)
				}
			}
			if got.State != nil && *got.State != st {
				t.Fatalf("state: got %+v, want %+v", *got.State, st)
			}
		}
		if _, err := next(); err == nil {
			t.Fatal("read a record past the last one")
		}
	}
	if err := sp.add(want[0]); err == nil {
		t.Fatal("add after records(): no error")
	}
	raw, err := io.ReadAll(io.NewSectionReader(sp.f, 0, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("ACME-secret")) || !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) {
		t.Fatalf("spill on disk is not an age file or holds a name in plaintext (%d bytes)", len(raw))
	}
}

// The hand-written spill encoding carries every field of a record: one
// with every field set (negative, large and empty values among them) reads
// back equal, and a field added to a spilled type fails here until the
// encoding carries it.
func TestSpillRecordFields(t *testing.T) {
	fields := map[reflect.Type][]string{
		reflect.TypeOf(spillRec{}):         {"Entry", "Locs", "State", "Meta"},
		reflect.TypeOf(repo.Entry{}):       {"Path", "Type", "Mode", "ModTime", "UID", "GID", "User", "Group", "Size", "Link", "SHA256", "Chunks"},
		reflect.TypeOf(spillLoc{}):         {"ID", "Slot", "Offset", "Length", "Raw", "Zstd"},
		reflect.TypeOf(source.FileState{}): {"Size", "MTime", "CTime", "Ino", "Dev", "ETag"},
		// The change cache's records (appendCacheEntry, appendCacheHeader).
		reflect.TypeOf(cacheHeader{}): {"Version", "Totals"},
		reflect.TypeOf(cacheEntry{}):  {"Source", "Path", "Rec"},
		reflect.TypeOf(cacheRec{}):    {"Key", "SHA256", "Chunks", "Meta"},
		reflect.TypeOf(cacheChunk{}):  {"ID", "Pack", "Offset", "Length", "Raw", "Zstd"},
	}
	for typ, want := range fields {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%v has fields %q; the spill encodes %q (spill.encode, decodeSpillRec)", typ, got, want)
		}
	}
	recs := []spillRec{
		{Entry: repo.Entry{Path: "a/\xff b", Type: "file", Mode: fs.ModeSetuid | 0o4755, ModTime: time.Unix(-1e10, 999_999_999).UTC(),
			UID: -1, GID: 1 << 40, User: "ü", Group: "g", Size: 1 << 50, Link: "l", SHA256: strings.Repeat("cd", 32)},
			Locs:  []spillLoc{{ID: repo.ChunkID{1, 2, 31: 3}, Slot: 7, Offset: 1 << 33, Length: 9, Raw: 12, Zstd: true}, {Slot: 0}},
			State: &source.FileState{Size: 5, MTime: -3, CTime: 1 << 62, Ino: 1<<64 - 1, Dev: 2, ETag: `"e"`}, Meta: []byte(`{"k":1}`)},
		{Entry: repo.Entry{Path: "d", Type: "dir", ModTime: time.Time{}}, Locs: []spillLoc{}, Meta: nil},
		{Entry: repo.Entry{Path: "e", Type: "file", ModTime: time.Unix(1_700_000_000, 5).UTC()}, Locs: []spillLoc{}, State: &source.FileState{}, Meta: []byte{}},
	}
	sp, err := newSpill()
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	for i := range recs {
		if err := sp.encode(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	next, err := sp.records()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range recs {
		got, err := next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d: got %+v, want %+v", i, got, want)
		}
	}
	for _, want := range []cacheEntry{
		{Source: "s", Path: "a/\xff", Rec: cacheRec{Key: *recs[0].State, SHA256: "h",
			Chunks: []cacheChunk{{ID: repo.ChunkID{9, 31: 1}, Pack: "p", Offset: 1 << 40, Length: 3, Raw: 4, Zstd: true}, {}}, Meta: []byte("m")}},
		{Source: "", Path: "b", Rec: cacheRec{Meta: []byte{}}},
	} {
		var got cacheEntry
		if err := decodeCacheEntry(&spillDecoder{b: appendCacheEntry(nil, &want)}, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("cache entry: got %+v (%v), want %+v", got, err, want)
		}
	}
	wantH := cacheHeader{Version: cacheVersion, Totals: map[string]progress.Counts{"a": {Bytes: 1 << 40, Files: 3}, "b": {}}}
	var gotH cacheHeader
	if err := decodeCacheHeader(&spillDecoder{b: appendCacheHeader(nil, &wantH)}, &gotH); err != nil || !reflect.DeepEqual(gotH, wantH) {
		t.Fatalf("cache header: got %+v (%v), want %+v", gotH, err, wantH)
	}
	if err := sp.encode(&spillRec{Entry: repo.Entry{Chunks: []repo.ChunkRef{{}}}}); err == nil {
		t.Fatal("spilled an entry with chunk references: no error")
	}
}
