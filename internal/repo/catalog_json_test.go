package repo

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// oddStrings are names that test each way encoding/json escapes.
var oddStrings = []string{
	"", "invoice-2024-0001.pdf", "a/b/c.txt", "ünïcödé/名前/файл", "emoji 🧾📁", "quote\" and back\\slash",
	"<script>&amp;</script>", "ctl \x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f end", "del \x7f", "line\u2028sep\u2029para",
	"bad \xff\xfe utf-8", "\xc3", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 beyond", "over\xc0\xafflow", "ends with \xe2\x82",
	"\u00a0\u200b\ufeff\ufffd", strings.Repeat("long/", 300),
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return oddStrings[r.IntN(len(oddStrings))]
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		switch r.IntN(4) {
		case 0:
			b[i] = byte(r.IntN(256))
		case 1:
			b[i] = byte(r.IntN(0x80))
		default:
			b[i] = "abcxyz/._- <>&\"\\"[r.IntN(16)]
		}
	}
	s := string(b)
	if r.IntN(5) == 0 {
		s += oddStrings[r.IntN(len(oddStrings))]
	}
	return s
}

func randEntry(r *rand.Rand) Entry {
	pick := func(v int64) int64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return -v
		}
		return v
	}
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+30*60), time.FixedZone("X", -8*3600), time.FixedZone("", 17)}
	e := Entry{Path: randString(r), Type: []string{"file", "dir", "symlink", "", "wéird\n"}[r.IntN(5)],
		Mode:    fs.FileMode(r.Uint32()) & []fs.FileMode{0o777, fs.ModePerm | fs.ModeSetuid | fs.ModeSticky, ^fs.FileMode(0)}[r.IntN(3)],
		ModTime: time.Unix(r.Int64N(1<<34)-1<<33, r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))]),
		UID:     int(pick(r.Int64N(1 << 31))), GID: int(pick(r.Int64N(1 << 20))), Size: pick(r.Int64N(math.MaxInt64)),
		SHA256: []string{"", strings.Repeat("ab", 32), randString(r)}[r.IntN(3)]}
	if r.IntN(2) == 0 {
		e.User, e.Group = randString(r), randString(r)
	}
	if r.IntN(3) == 0 {
		e.Link = randString(r)
	}
	switch r.IntN(4) {
	case 0:
		e.Chunks = []ChunkRef{}
	case 1, 2:
		for range r.IntN(5) + 1 {
			var c ChunkRef
			for i := range c.ID {
				c.ID[i] = byte(r.IntN(256))
			}
			c.Pack = []string{strings.Repeat("0f", 32), randString(r)}[r.IntN(2)]
			c.Offset, c.Length, c.Raw, c.Zstd = pick(r.Int64()), pick(r.Int64N(1<<30)), pick(r.Int64N(1<<30)), r.IntN(2) == 0
			e.Chunks = append(e.Chunks, c)
		}
	}
	return e
}

// checkEntryJSON fails unless appendEntryJSON writes e as encoding/json
// does, or both fail.
func checkEntryJSON(t *testing.T, e *Entry) {
	t.Helper()
	w := e.wire()
	want, werr := json.Marshal(w)
	got, gerr := appendEntryJSON([]byte("prefix"), &w)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("entry %+v: encoding/json error %v, hand encoder error %v", e, werr, gerr)
	}
	if werr == nil && !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("entry %+v:\nhand encoder %s\nencoding/json %s", e, got[len("prefix"):], want)
	}
}

// TestCatalogJSON: the catalog's hand encoder of entries writes exactly
// what encoding/json wrote, on many random entries and on names with every
// kind of byte that JSON escapes (control bytes, quotes, <, > and &,
// U+2028, bytes that are not UTF-8 and go to path_b64); times out of
// RFC 3339's range fail as they did.
func TestCatalogJSON(t *testing.T) {
	for _, s := range oddStrings {
		checkEntryJSON(t, &Entry{Path: s, Type: s, User: s, Group: s, Link: s, SHA256: s, ModTime: time.Unix(1, 2),
			Chunks: []ChunkRef{{Pack: s, Length: 1}}})
	}
	for _, tm := range []time.Time{{}, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 100, time.FixedZone("", -(23*3600+59*60)))} {
		checkEntryJSON(t, &Entry{Path: "t", ModTime: tm})
	}
	r := rand.New(rand.NewPCG(12, 34))
	for range 20000 {
		e := randEntry(r)
		checkEntryJSON(t, &e)
	}
	// Every single byte and every rune boundary around the escapes.
	for c := range 256 {
		checkEntryJSON(t, &Entry{Path: "x" + string(rune(c)) + string([]byte{byte(c)}) + "y"})
	}
}

// FuzzCatalogJSON compares the hand encoder with encoding/json.
func FuzzCatalogJSON(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, s, s, int64(1700000000), int64(5), int32(3600), int64(100), uint32(0o644), true)
	}
	f.Add("", "", "", int64(-62135596801), int64(0), int32(0), int64(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, path, link, pack string, sec, nsec int64, zone int32, size int64, mode uint32, zstd bool) {
		e := Entry{Path: path, Link: link, User: pack, Group: link, Type: "file", Mode: fs.FileMode(mode), Size: size,
			ModTime: time.Unix(sec, nsec).In(time.FixedZone("", int(zone%(100*3600)))), UID: int(size), GID: int(-size),
			SHA256: path, Chunks: []ChunkRef{{Pack: pack, Offset: size, Length: sec, Raw: nsec, Zstd: zstd}}}
		checkEntryJSON(t, &e)
	})
}
