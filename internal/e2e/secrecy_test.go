package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/restore"
)

// smallTree is enough for tests that look at every object.
var smallTree = fixture.TreeSpec{Files: 300, BigFileSize: 3 << 20, Seed: 42}

// ageDecrypt runs the reference age CLI: age -d -i identityFile, the
// object on stdin.
func ageDecrypt(t *testing.T, ageBin, identityFile string, ct []byte) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(ageBin, "-d", "-i", identityFile)
	cmd.Stdin = bytes.NewReader(ct)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// zstdCLI decompresses with the zstd CLI when it is installed, else returns
// nil.
func zstdCLI(t *testing.T, b []byte) []byte {
	t.Helper()
	bin, ok := testutil.FindBinary("zstd")
	if !ok {
		return nil
	}
	cmd := exec.Command(bin, "-d", "-c", "-q")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	return out
}

// TestE2EEncryptOnly: a backup host with no identity backs up; it cannot
// restore (ErrNoIdentity) nor verify at decrypt depth, but verifies at read
// depth. Every stored object but the signed config and manifests is an age
// file that the reference age CLI decrypts with identity.txt; packs end in
// the CPAK0002 magic, catalogs and the index are zstd frames (checked with
// the zstd CLI when present), and the index also decrypts with the
// repository's index identity, which opens nothing else; the host's box
// identity opens the secrets object only.
func TestE2EEncryptOnly(t *testing.T) {
	t.Parallel()
	ageBin, ok := testutil.FindBinary("age")
	if !ok {
		testutil.Missing(t, "the age CLI is not installed (apt-get install age)")
	}
	e := localEnv(t)
	dir, _ := tree(t, smallTree)
	res := e.backupDir(t, dir, true) // e.backupRepo has no identity
	m := res.Manifest
	ctx := ctxT(t)

	if _, err := restore.Load(ctx, e.backupRepo, m); !errors.Is(err, repo.ErrNoIdentity) {
		t.Errorf("restore.Load without identity: %v, want ErrNoIdentity", err)
	}
	if _, err := restore.Verify(ctx, e.backupRepo, nil, restore.Decrypt); !errors.Is(err, repo.ErrNoIdentity) {
		t.Errorf("verify --decrypt without identity: %v, want ErrNoIdentity", err)
	}
	if _, err := e.backupRepo.NewChunkReader(ctx, m); !errors.Is(err, repo.ErrNoIdentity) {
		t.Errorf("NewChunkReader without identity: %v, want ErrNoIdentity", err)
	}
	if rep, err := restore.Verify(ctx, e.backupRepo, nil, restore.Read); err != nil || !rep.OK() {
		t.Errorf("verify (read) without identity: %v %+v", err, rep)
	}

	identity := e.keys.Identity
	secrets, err := e.backupRepo.Secrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	indexIdentity := filepath.Join(t.TempDir(), "index-identity.txt")
	if err := os.WriteFile(indexIdentity, []byte(secrets.IndexIdentity.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The host's box identity opens the secrets object and nothing else.
	boxIdentity := filepath.Join(t.TempDir(), "box-identity.txt")
	if err := os.WriteFile(boxIdentity, []byte(e.signing.BoxIdentity().String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	kinds := map[string]int{}
	for _, oi := range listObjects(t, e.store, "") {
		b := readObject(t, e.store, oi.Name)
		kind, _, _ := strings.Cut(oi.Name, "/")
		kinds[kind]++
		switch kind {
		case "running", "holds":
			// A backup's running markers (design section 17.4): public
			// JSON of ids and times only.
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("%s is not JSON: %v", oi.Name, err)
			}
			for k := range m {
				if !slices.Contains([]string{"version", "run", "started", "expires", "done", "hold", "snapshot", "created", "released"}, k) {
					t.Errorf("%s holds %q", oi.Name, k)
				}
			}
			continue
		case "config", "snapshots":
			want := "coffer-signed-v1 manifest\n"
			if kind == "config" {
				want = "coffer-signed-v1 config\n"
			}
			if !bytes.HasPrefix(b, []byte(want)) {
				t.Errorf("%s is not a signed document: %.40q", oi.Name, b)
			}
			continue
		}
		if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) {
			t.Errorf("%s is not an age file: %.40q", oi.Name, b)
			continue
		}
		plain, err := ageDecrypt(t, ageBin, identity, b)
		if err != nil {
			t.Errorf("age -d -i identity.txt %s: %v", oi.Name, err)
			continue
		}
		_, indexErr := ageDecrypt(t, ageBin, indexIdentity, b)
		if _, boxErr := ageDecrypt(t, ageBin, boxIdentity, b); (boxErr == nil) != (oi.Name == e.backupRepo.Config.Secrets.Name) {
			t.Errorf("%s: the host's box identity decrypts it: %v (only the secrets object should)", oi.Name, boxErr == nil)
		}
		switch kind {
		case "data":
			if !bytes.HasSuffix(plain, []byte("CPAK0002")) {
				t.Errorf("%s: plaintext does not end with CPAK0002", oi.Name)
			}
		case "catalogs", "index", "private":
			if !bytes.HasPrefix(plain, zstdMagic) {
				t.Errorf("%s: plaintext is not a zstd frame: %.8x", oi.Name, plain)
				continue
			}
			if j := zstdCLI(t, plain); j != nil {
				if !json.Valid(j) {
					t.Errorf("%s: zstd -d gives no JSON: %.60q", oi.Name, j)
				}
				// The catalog root lists the chunks that hold the
				// catalog; the file names live in those chunks, in packs.
				if kind == "catalogs" && !bytes.Contains(j, []byte(`"chunks"`)) {
					t.Errorf("%s: the catalog root lists no chunks", oi.Name)
				}
			}
		case "keys":
		default:
			t.Errorf("unexpected object %s", oi.Name)
		}
		if kind == "index" && indexErr != nil {
			t.Errorf("%s does not decrypt with the derived index identity: %v", oi.Name, indexErr)
		}
		if kind != "index" && indexErr == nil {
			t.Errorf("%s decrypts with the index identity the backup host can derive", oi.Name)
		}
	}
	for _, k := range []string{"config", "keys", "data", "index", "catalogs", "private", "snapshots"} {
		if kinds[k] == 0 {
			t.Errorf("no %s object in the repository (have %v)", k, kinds)
		}
	}
	t.Logf("objects checked: %v", kinds)
	if _, ok := testutil.FindBinary("zstd"); !ok {
		t.Log("zstd CLI not installed: checked the zstd magic only")
	}
}

// TestE2ENamesRevealNothing: object names are fixed words and hex digests,
// and no stored byte (signed config and manifests included) holds a file
// name or a distinctive word of the tree, in UTF-8 or JSON-escaped form.
func TestE2ENamesRevealNothing(t *testing.T) {
	t.Parallel()
	e := localEnv(t)
	dir, st := tree(t, smallTree)
	e.backupDir(t, dir, true)
	if _, err := fixture.AddFiles(dir, 0.01, 1); err != nil {
		t.Fatal(err)
	}
	e.backupDir(t, dir, true)

	words := append([]string{"Rechnung", "Müller", "請求書", "Kunden", "invoice", "receipt", "tief-1",
		"archive-big", "backup-2025", "Zahlung", "added-1", "Kundenliste", "ACME GmbH"}, st.Names...)
	valid := regexp.MustCompile(`^(config/[0-9]{10}|(keys|index|catalogs|private|snapshots|tombstones)/[0-9a-f]{64}|running/[0-9a-f]{64}-[0-9]{6}|holds/[0-9a-f]{64}(?:\.released)?|data/([0-9a-f]{2})/[0-9a-f]{64})$`)
	var manifest []byte
	for _, oi := range listObjects(t, e.store, "") {
		if !valid.MatchString(oi.Name) {
			t.Errorf("object name %q is not a fixed word or digest", oi.Name)
		}
		if m := valid.FindStringSubmatch(oi.Name); m != nil && m[3] != "" && !strings.HasPrefix(oi.Name[8:], m[3]) {
			t.Errorf("pack %s is not in the folder of its first two digits", oi.Name)
		}
		b := readObject(t, e.store, oi.Name)
		if strings.HasPrefix(oi.Name, "snapshots/") {
			manifest = b
		}
		for _, w := range words {
			j, _ := json.Marshal(w)
			for _, form := range [][]byte{[]byte(w), j[1 : len(j)-1]} {
				if bytes.Contains(b, form) {
					t.Errorf("%s contains %q", oi.Name, form)
				}
			}
			if strings.Contains(oi.Name, w) {
				t.Errorf("object name %s contains %q", oi.Name, w)
			}
		}
	}
	// The scan does find what is there: the public manifest names the
	// source. The host is in the private part only.
	if !bytes.Contains(manifest, []byte(`"`+sourceName+`"`)) {
		t.Errorf("manifest lacks its public source name:\n%s", manifest)
	}
	if bytes.Contains(manifest, []byte(`"e2e-host"`)) {
		t.Errorf("manifest shows the host name:\n%s", manifest)
	}
}
