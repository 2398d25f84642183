package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
)

// checkFiles compares a restored folder with the catalog: the same files,
// file count, bytes, and the SHA-256 of every file, read back from disk.
func checkFiles(ctx context.Context, src *restore.Source, dir string) Check {
	c := Check{Name: "files"}
	want := map[string]string{} // path -> sha256
	var wantBytes int64
	for _, e := range src.Catalog().Entries {
		if e.Type == string(source.TypeFile) {
			want[e.Path] = e.SHA256
			wantBytes += e.Size
		}
	}
	var problems []string
	files, bytes := 0, int64(0)
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !de.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		files++
		sum, ok := want[rel]
		if !ok {
			problems = append(problems, "not in the catalog: "+rel)
			return nil
		}
		delete(want, rel)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		bytes += n
		if hex.EncodeToString(h.Sum(nil)) != sum {
			problems = append(problems, "content differs: "+rel)
		}
		return nil
	})
	if err != nil {
		c.Result, c.Detail = Fail, "read the restored folder: "+err.Error()
		return c
	}
	for p := range want {
		problems = append(problems, "missing: "+p)
	}
	if bytes != wantBytes && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("%d bytes, the catalog says %d", bytes, wantBytes))
	}
	if len(problems) > 0 {
		c.Result, c.Detail = Fail, strings.Join(first(problems, 10), "; ")
		return c
	}
	c.Result, c.Detail = Pass, fmt.Sprintf("%d files, %d bytes, every SHA-256 as in the catalog", files, bytes)
	return c
}
