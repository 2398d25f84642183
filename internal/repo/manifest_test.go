package repo

import (
	"strings"
	"testing"
	"time"
)

func TestManifestValidateV2(t *testing.T) {
	if err := testManifest().Validate(); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
	other := strings.Repeat("cd", 32)
	for name, edit := range map[string]func(m *Manifest){
		"seen not hex":        func(m *Manifest) { m.Seen = []string{"xyz"} },
		"seen upper case":     func(m *Manifest) { m.Seen = []string{strings.ToUpper(other)} },
		"seen itself":         func(m *Manifest) { m.Seen = []string{m.ID} },
		"seen twice":          func(m *Manifest) { m.Seen = []string{other, other} },
		"source without name": func(m *Manifest) { m.Sources[0].Name = "" },
		"source without kind": func(m *Manifest) { m.Sources[0].Kind = "" },
		"source twice":        func(m *Manifest) { m.Sources = append(m.Sources, m.Sources[0]) },
		"private elsewhere":   func(m *Manifest) { m.Private.Name = CatalogPrefix + m.Private.SHA256 },
		"private empty":       func(m *Manifest) { m.Private.Size = 0 },
		"no private":          func(m *Manifest) { m.Private = ObjectRef{} },
	} {
		m := testManifest()
		edit(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
	m := testManifest()
	m.Seen = nil // the first snapshot of a repository, decoded from "seen": null
	if err := m.Validate(); err != nil {
		t.Errorf("no seen: %v", err)
	}
}

func TestManifestInFuture(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := testManifest()
	for _, c := range []struct {
		at     time.Time
		future bool
	}{
		{now.Add(-time.Hour), false},
		{now.Add(MaxClockSkew), false},
		{now.Add(MaxClockSkew + time.Second), true},
		{time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), true},
	} {
		m.Time = c.at
		if got := m.InFuture(now); got != c.future {
			t.Errorf("InFuture at %s = %v, want %v", c.at.Sub(now), got, c.future)
		}
	}
}

func TestPrivateCheck(t *testing.T) {
	m := testManifest()
	ok := func() *Private {
		return &Private{Version: Version, Snapshot: m.ID, Host: "h", Sources: []PrivateSource{{Name: "dags", Size: 10}}}
	}
	if err := ok().Check(m); err != nil {
		t.Fatalf("valid private part: %v", err)
	}
	for name, edit := range map[string]func(p *Private){
		"other snapshot":  func(p *Private) { p.Snapshot = NewID() },
		"other version":   func(p *Private) { p.Version = Version + 1 },
		"source renamed":  func(p *Private) { p.Sources[0].Name = "plugins" },
		"source missing":  func(p *Private) { p.Sources = nil },
		"negative size":   func(p *Private) { p.Sources[0].Size = -1 },
		"negative stats":  func(p *Private) { p.Stats.BytesNew = -1 },
		"negative length": func(p *Private) { p.Duration = -1 },
	} {
		p := ok()
		edit(p)
		if err := p.Check(m); err == nil {
			t.Errorf("%s: Check() = nil, want an error", name)
		}
	}
}

// TestPadding: sealed documents are padded with a zstd skippable frame to
// a Padmé length, which every decoder skips.
func TestPadding(t *testing.T) {
	prev := int64(0)
	for n := int64(1); n < 1<<22; n = n*5/4 + 1 {
		p := padme(n)
		if p < n || p < prev || float64(p-n) > 0.12*float64(n)+1 {
			t.Fatalf("padme(%d) = %d (previous %d)", n, p, prev)
		}
		prev = p
	}
	id := mustIdentity(t)
	short, err := Seal(&Private{Host: "a"}, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	long, err := Seal(&Private{Host: strings.Repeat("host-name.", 20), Tags: []string{"nightly", "before-upgrade"},
		Warnings: []string{"docs: a/b: permission denied"}}, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if len(short) != len(long) {
		t.Errorf("private parts of different lengths seal to %d and %d bytes, want one size", len(short), len(long))
	}
	var p Private
	if err := Unseal(long, &p, id); err != nil || len(p.Tags) != 2 {
		t.Fatalf("Unseal padded: %+v, %v", p, err)
	}
	for _, n := range []int{0, 100, 503, 504, 505, 5000, 100000} {
		z := Compress(nil, []byte(strings.Repeat("x", n)))
		padded := Pad(z)
		if int64(len(padded)) != padme(max(int64(len(z))+8, minPadded)) {
			t.Errorf("Pad(%d bytes) = %d bytes", len(z), len(padded))
		}
		plain, err := DecompressDocument(padded)
		if err != nil || len(plain) != n {
			t.Errorf("decode padded %d bytes: %d bytes, %v", n, len(plain), err)
		}
	}
}
