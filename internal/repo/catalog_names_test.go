package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestCatalogNamesByteExact: paths and link targets that are not UTF-8
// survive the catalog's JSON byte for byte (json.Marshal alone would write
// U+FFFD, so "a\xff" and "a\xfe" would both come back as "a\uFFFD"), and
// the per-source SHA-256 covers the real bytes.
func TestCatalogNamesByteExact(t *testing.T) {
	entries := []Entry{
		{Path: ".", Type: "dir", ModTime: time.Unix(1, 0).UTC()},
		{Path: "a\xff", Type: "file", SHA256: strings.Repeat("0", 64), ModTime: time.Unix(2, 0).UTC()},
		{Path: "a\xfe", Type: "file", SHA256: strings.Repeat("1", 64), ModTime: time.Unix(3, 0).UTC()},
		{Path: "ü/ok", Type: "symlink", Link: "to-\xff\x00x", ModTime: time.Unix(4, 0).UTC()},
		{Path: "plain", Type: "symlink", Link: "../ü", ModTime: time.Unix(5, 0).UTC()},
	}
	var buf bytes.Buffer
	enc := NewCatalogEncoder(&buf, "snap")
	if err := enc.Source("docs", "dir", nil); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := enc.Entry(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	js := buf.String()
	for _, want := range []string{`"path_b64":"Yf8="`, `"path_b64":"Yf4="`, `"path":"ü/ok"`, `"link_b64":"dG8t/wB4"`, `"link":"../ü"`} {
		if !strings.Contains(js, want) {
			t.Errorf("catalog JSON lacks %s:\n%s", want, js)
		}
	}
	if strings.Contains(js, "\ufffd") || strings.Contains(js, `\ufffd`) {
		t.Errorf("catalog JSON holds U+FFFD:\n%s", js)
	}
	c, err := DecodeCatalog(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := c.Sources[0].Entries
	for i := range entries {
		if got[i].Path != entries[i].Path || got[i].Link != entries[i].Link {
			t.Errorf("entry %d: got %q -> %q, want %q -> %q", i, got[i].Path, got[i].Link, entries[i].Path, entries[i].Link)
		}
	}
	// The per-source hash is over the exact bytes, as the encoder wrote.
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e.Path + "\x00" + e.Type + "\x00" + e.SHA256 + "\x00" + e.Link + "\n"))
	}
	if want := hex.EncodeToString(h.Sum(nil)); c.Sources[0].SHA256 != want || c.Sources[0].Hash() != want {
		t.Errorf("source hash %s (recomputed %s), want %s", c.Sources[0].SHA256, c.Sources[0].Hash(), want)
	}
	// json.Unmarshal into a Catalog (Entry.UnmarshalJSON) agrees.
	var c2 Catalog
	if err := json.Unmarshal(buf.Bytes(), &c2); err != nil {
		t.Fatal(err)
	}
	if c2.Sources[0].Entries[1].Path != "a\xff" {
		t.Errorf("json.Unmarshal: %q", c2.Sources[0].Entries[1].Path)
	}
	// And json.Marshal of an Entry uses the same form.
	b, _ := json.Marshal(entries[2])
	if !strings.Contains(string(b), `"path_b64":"Yf4="`) {
		t.Errorf("json.Marshal(Entry) = %s", b)
	}
}

// TestCatalogNamesCanonical: every name has one encoding. A reader refuses
// an entry with both forms of a name, or a _b64 form that holds UTF-8
// (which would let two entries name the same file in two ways).
func TestCatalogNamesCanonical(t *testing.T) {
	for _, tc := range []struct{ entry, want string }{
		{`{"path":"a","path_b64":"Yf8=","type":"file"}`, "both path and path_b64"},
		{`{"path_b64":"YQ==","type":"file"}`, "is valid UTF-8"},
		{`{"path":"l","type":"symlink","link":"x","link_b64":"Yf8="}`, "both link and link_b64"},
		{`{"path":"l","type":"symlink","link_b64":"YQ=="}`, "is valid UTF-8"},
	} {
		doc := `{"version":1,"snapshot":"s","sources":[{"name":"docs","kind":"dir","entries":[` + tc.entry + `]}]}`
		_, err := DecodeCatalog([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.entry, err, tc.want)
		}
		var c Catalog
		if err := json.Unmarshal([]byte(doc), &c); err == nil {
			t.Errorf("%s: json.Unmarshal accepted it", tc.entry)
		}
	}
}

// TestCheckEntries: what a folder restore could not create exactly is
// found without writing anything.
func TestCheckEntries(t *testing.T) {
	file := func(p string) Entry { return Entry{Path: p, Type: "file"} }
	dir := func(p string) Entry { return Entry{Path: p, Type: "dir"} }
	link := func(p, l string) Entry { return Entry{Path: p, Type: "symlink", Link: l} }
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    string // "" = restorable
	}{
		{"ok", []Entry{dir("."), file("a"), dir("d"), file("d/b"), link("d/l", "../a")}, ""},
		{"no root entry", []Entry{file("dump.pgdump")}, ""},
		{"same name twice", []Entry{dir("."), file("a\ufffd"), file("a\ufffd")}, "\"a\ufffd\" is listed twice"},
		{"file and folder of one name", []Entry{dir("d"), file("d")}, `"d" is listed twice`},
		{"root twice", []Entry{dir("."), dir(".")}, `"." is listed twice`},
		{"root a file", []Entry{file(".")}, "the root is a file"},
		{"parent missing", []Entry{file("d/b")}, `"d/b": its folder "d" is not a folder listed before it`},
		{"parent after child", []Entry{file("d/b"), dir("d")}, `its folder "d" is not a folder`},
		{"parent a symlink", []Entry{link("d", "/etc"), file("d/passwd")}, `its folder "d" is not a folder`},
		{"unsafe path", []Entry{file("../x")}, `unsafe path "../x"`},
		{"unknown type", []Entry{{Path: "p", Type: "fifo"}}, `unknown type "fifo"`},
		{"empty link", []Entry{link("l", "")}, "invalid symlink target"},
		{"size", []Entry{{Path: "f", Type: "file", Size: 3}}, "its chunks hold 0 bytes, the entry says 3"},
	} {
		err := CheckEntries(tc.entries)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
