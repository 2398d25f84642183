package repo

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

type edKey struct{ priv ed25519.PrivateKey }

func (k edKey) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

type edPub ed25519.PublicKey

func (p edPub) Verify(msg, sig []byte) bool { return ed25519.Verify(ed25519.PublicKey(p), msg, sig) }

func newKey(t testing.TB) (edKey, edPub) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return edKey{priv}, edPub(pub)
}

func testManifest() *Manifest {
	sum := strings.Repeat("ab", 32)
	return &Manifest{Version: Version, ID: NewID(), Repo: NewID(), Time: time.Unix(1700000000, 0).UTC(), ConfigSeq: 1,
		Seen:    []string{strings.Repeat("cd", 32)},
		Sources: []ManifestSource{{Name: "dags", Kind: "dir"}},
		Private: ObjectRef{Name: PrivatePrefix + sum, Size: 600, SHA256: sum},
		Catalog: ObjectRef{Name: CatalogPrefix + sum, Size: 10, SHA256: sum},
		Packs:   []PackRef{{SHA256: sum, Size: 100}}}
}

func TestSignedRoundTrip(t *testing.T) {
	k, pub := newKey(t)
	m := testManifest()
	doc, err := Sign(KindManifest, m, k)
	if err != nil {
		t.Fatal(err)
	}
	var got Manifest
	if err := openSigned(KindManifest, doc, pub, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || !slices.Equal(got.Seen, m.Seen) {
		t.Fatalf("round trip changed the manifest: %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSignedTamper(t *testing.T) {
	k, pub := newKey(t)
	_, other := newKey(t)
	doc, err := Sign(KindManifest, testManifest(), k)
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	edited := bytes.Replace(doc, []byte(`"name": "dags"`), []byte(`"name": "dogs"`), 1)
	if bytes.Equal(edited, doc) {
		t.Fatal("test did not edit the document")
	}
	if err := openSigned(KindManifest, edited, pub, &m); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("edited manifest: err = %v, want ErrBadSignature", err)
	}
	if err := openSigned(KindManifest, doc, other, &m); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: err = %v, want ErrBadSignature", err)
	}
	// A config signature does not pass as a manifest signature.
	cdoc := bytes.Replace(doc, []byte("coffer-signed-v1 manifest"), []byte("coffer-signed-v1 config"), 1)
	var c Config
	if err := openSigned(KindConfig, cdoc, pub, &c); err == nil {
		t.Fatal("a manifest re-labelled as config verified")
	}
	for _, n := range []int{0, 10, 30, len(doc) / 2} {
		if err := openSigned(KindManifest, doc[:n], pub, &m); err == nil {
			t.Fatalf("truncated at %d: verified", n)
		}
	}
}

func TestPackTrailer(t *testing.T) {
	b := NewPackBuilder(1024)
	var id1, id2 ChunkID
	id1[0], id2[0] = 1, 2
	c1 := b.Add(id1, []byte("hello"), 5, false)
	c2 := b.Add(id2, []byte("world!"), 10, true)
	plain := b.Finish()
	chunks, err := ParsePackTrailer(plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 2 || chunks[0] != c1 || chunks[1] != c2 {
		t.Fatalf("trailer = %+v, want %+v %+v", chunks, c1, c2)
	}
	if got := string(plain[c2.Offset : c2.Offset+c2.Length]); got != "world!" {
		t.Fatalf("chunk 2 = %q", got)
	}
	if _, err := ParsePackTrailer(plain[:len(plain)-1]); err == nil {
		t.Fatal("truncated pack parsed")
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{".", "a", "a/b", "Rechnung-Müller.pdf", "a/.hidden"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "/etc/passwd", "..", "../x", "a/../../x", "a//b", "a/./b", "a/", "./a", "a\x00b"} {
		if err := CheckPath(p); err == nil {
			t.Errorf("CheckPath(%q) = nil, want an error", p)
		}
	}
}

func TestSealRoundTrip(t *testing.T) {
	id := mustIdentity(t)
	ct, err := Seal(map[string]int{"a": 1}, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := Unseal(ct, &got, id); err != nil {
		t.Fatal(err)
	}
	if got["a"] != 1 {
		t.Fatalf("got %v", got)
	}
	if err := Unseal(ct, &got, mustIdentity(t)); err == nil {
		t.Fatal("another identity decrypted")
	}
}

func FuzzOpenManifest(f *testing.F) {
	k, pub := newKey(f)
	doc, _ := Sign(KindManifest, testManifest(), k)
	f.Add(doc)
	f.Add([]byte("coffer-signed-v1 manifest\n\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if err := openSigned(KindManifest, b, nil, &m); err == nil {
			_ = m.Validate()
		}
		_ = openSigned(KindManifest, b, pub, &m)
	})
}

func FuzzCatalog(f *testing.F) {
	f.Add([]byte(`{"version":1,"snapshot":"x","sources":[{"name":"s","kind":"dir","entries":[{"path":"a","type":"file","chunks":[{"id":"` + strings.Repeat("b", 64) + `","p":"` + strings.Repeat("a", 64) + `","o":0,"l":1,"r":1}]}]}]}`))
	f.Add([]byte(`{"version":1,"snapshot":"x","sources":[{"name":"s","kind":"dir","entries":[{"path_b64":"Yf8=","type":"symlink","link_b64":"/w=="}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Catalog
		err := jsonUnmarshal(b, &c)
		if dc, derr := DecodeCatalog(b); (derr == nil) != (err == nil) {
			t.Fatalf("DecodeCatalog error %v, json.Unmarshal error %v", derr, err)
		} else if err == nil {
			for i, s := range dc.Sources {
				_ = CheckEntries(s.Entries)
				for j, e := range s.Entries {
					if e.Path != c.Sources[i].Entries[j].Path || e.Link != c.Sources[i].Entries[j].Link {
						t.Fatalf("DecodeCatalog and json.Unmarshal disagree on entry %d/%d", i, j)
					}
				}
			}
		}
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		for _, s := range c.Sources {
			for _, e := range s.Entries {
				if CheckPath(e.Path) != nil {
					t.Fatalf("validated catalog holds unsafe path %q", e.Path)
				}
				for _, ch := range e.Chunks {
					if len(ch.Pack) != 64 {
						t.Fatalf("validated catalog holds chunk in pack %q", ch.Pack)
					}
				}
			}
		}
	})
}

func FuzzPackTrailer(f *testing.F) {
	b := NewPackBuilder(64)
	b.Add(ChunkID{}, []byte("abc"), 3, false)
	f.Add(b.Finish())
	undo := WriteV1PackTrailers()
	b = NewPackBuilder(64)
	b.Add(ChunkID{}, []byte("abc"), 3, false)
	f.Add(b.Finish())
	undo()
	f.Fuzz(func(t *testing.T, plain []byte) {
		chunks, err := ParsePackTrailer(plain)
		if err != nil {
			return
		}
		for _, c := range chunks {
			if c.Offset < 0 || c.Offset+c.Length > int64(len(plain)) {
				t.Fatalf("chunk out of range: %+v", c)
			}
		}
	})
}

// FuzzCatalogStream: the streaming decoder never panics, and what it
// accepts DecodeCatalog accepts too, with the same entries, every path
// safe and every source's hash and size matching its entries.
func FuzzCatalogStream(f *testing.F) {
	good := SourceCatalog{Entries: []Entry{{Path: "a", Type: "file", Size: 1, Chunks: []ChunkRef{{Pack: strings.Repeat("a", 64), Length: 1, Raw: 1}}}}}
	f.Add([]byte(`{"version":1,"snapshot":"x","sources":[{"name":"s","kind":"dir","entries":[{"path":"a","type":"file","size":1,"chunks":[{"id":"` +
		strings.Repeat("0", 64) + `","p":"` + strings.Repeat("a", 64) + `","o":0,"l":1,"r":1}]}],"sha256":"` + good.Hash() + `","size":1}]}`))
	f.Add([]byte(`{"version":1,"snapshot":"x","sources":[{"name":"s","kind":"dir","entries":[{"path_b64":"Yf8=","type":"symlink","link_b64":"/w=="}]}]}`))
	f.Add([]byte(`{"version":1,"snapshot":"x","sources":[{"name":"s","entries":[],"kind":"dir"}]} x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeCatalog(bytes.NewReader(b), "catalog", "x", nil)
		if err != nil {
			return
		}
		var got [][]Entry
		for {
			h, err := s.NextSource()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
			var es []Entry
			for {
				var e Entry
				if err := s.NextEntry(&e); err == io.EOF {
					break
				} else if err != nil {
					return
				}
				if CheckPath(e.Path) != nil {
					t.Fatalf("stream gave unsafe path %q", e.Path)
				}
				es = append(es, e)
			}
			sc := SourceCatalog{Entries: es}
			if sc.Hash() != s.sha {
				t.Fatalf("source %q accepted with a hash that does not match its entries", h.Name)
			}
			got = append(got, es)
		}
		dc, err := DecodeCatalog(b)
		if err != nil {
			t.Fatalf("the stream accepted what DecodeCatalog refuses: %v", err)
		}
		if len(dc.Sources) != len(got) {
			t.Fatalf("stream: %d sources, DecodeCatalog: %d", len(got), len(dc.Sources))
		}
		for i := range got {
			if len(got[i]) != len(dc.Sources[i].Entries) {
				t.Fatalf("source %d: stream %d entries, DecodeCatalog %d", i, len(got[i]), len(dc.Sources[i].Entries))
			}
			for j := range got[i] {
				if got[i][j].Path != dc.Sources[i].Entries[j].Path || got[i][j].Link != dc.Sources[i].Entries[j].Link {
					t.Fatalf("stream and DecodeCatalog disagree on entry %d/%d", i, j)
				}
			}
		}
	})
}
