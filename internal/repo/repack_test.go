package repo

import (
	"strings"
	"testing"
	"time"
)

func testRepack() *Repack {
	h := func(c string) string { return strings.Repeat(c, 64) }
	return &Repack{Version: Version, ID: h("1"), Repo: h("2"), Time: time.Unix(1e9, 0).UTC(), ConfigSeq: 1,
		Signer: "coffer-signing-pub-v1:x", Index: ObjectRef{Name: IndexPrefix + h("3"), Size: 10, SHA256: h("3")},
		Packs: []PackRef{{SHA256: h("4"), Size: 5}}, Replaces: []PackRef{{SHA256: h("5"), Size: 6}}, Snapshots: []string{h("6")}}
}

// TestRepackValidate: the shape rules of a repack record (design.md,
// section 6.3).
func TestRepackValidate(t *testing.T) {
	if err := testRepack().Validate(); err != nil {
		t.Fatalf("a good record: %v", err)
	}
	for name, edit := range map[string]func(*Repack){
		"version":       func(r *Repack) { r.Version = 1 },
		"id":            func(r *Repack) { r.ID = "x" },
		"config seq":    func(r *Repack) { r.ConfigSeq = 0 },
		"index name":    func(r *Repack) { r.Index.Name = IndexPrefix + strings.Repeat("9", 64) },
		"no packs":      func(r *Repack) { r.Packs = nil },
		"no replaces":   func(r *Repack) { r.Replaces = nil },
		"pack size":     func(r *Repack) { r.Packs[0].Size = 0 },
		"pack name":     func(r *Repack) { r.Replaces[0].SHA256 = "ABC" },
		"named twice":   func(r *Repack) { r.Packs[0].SHA256 = r.Replaces[0].SHA256 },
		"snapshot id":   func(r *Repack) { r.Snapshots = []string{"nope"} },
		"index size":    func(r *Repack) { r.Index.Size = 0 },
		"index sha bad": func(r *Repack) { r.Index.SHA256 = "x" },
	} {
		rk := testRepack()
		edit(rk)
		if err := rk.Validate(); err == nil {
			t.Errorf("%s: a bad record validates", name)
		}
	}
}

func FuzzOpenRepack(f *testing.F) {
	k, pub := newKey(f)
	doc, _ := Sign(KindRepack, testRepack(), k)
	f.Add(doc)
	f.Add([]byte("coffer-signed-v1 repack\n\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rk Repack
		if err := openSigned(KindRepack, b, nil, &rk); err == nil {
			_ = rk.Validate()
		}
		_ = openSigned(KindRepack, b, pub, &rk)
	})
}
