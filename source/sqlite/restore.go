package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// Restore restores a SQLite snapshot source to the file targetPath. The
// database is written to targetPath+".coffer-tmp" (mode 0600), must pass
// PRAGMA integrity_check and match the backup's fingerprints (else a
// *fingerprint.MismatchError), and is then renamed into place. An existing
// target is refused unless force; with force its stale -wal, -shm and
// -journal files are removed too, as they belong to the old database.
func Restore(ctx context.Context, src source.Reader, targetPath string, force bool) error {
	var info Info
	if err := src.Meta(MetaKey, &info); err != nil {
		return fmt.Errorf("source %s is not a SQLite snapshot: %w", src.Name(), err)
	}
	var want fingerprint.Fingerprints
	if err := src.Meta(fingerprint.MetaKey, &want); err != nil {
		return fmt.Errorf("source %s: fingerprints: %w", src.Name(), err)
	}
	if _, err := os.Lstat(targetPath); err == nil && !force {
		return fmt.Errorf("%s already exists: %w", targetPath, source.ErrTargetFileExists)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp := targetPath + ".coffer-tmp"
	os.Remove(tmp) // left by an interrupted restore
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := sqliteWriteTemp(ctx, src, tmp); err != nil {
		return err
	}
	db, err := Open(tmp, true)
	if err != nil {
		return fmt.Errorf("open restored database: %w", err)
	}
	defer db.Close()
	if err := sqliteIntegrity(ctx, db); err != nil {
		return err
	}
	got, err := Fingerprints(ctx, db, info.Checks)
	if err != nil {
		return fmt.Errorf("fingerprints of restored database: %w", err)
	}
	db.Close()
	if diffs := fingerprint.Compare(want, got); len(diffs) > 0 {
		return &fingerprint.MismatchError{Diffs: diffs}
	}
	if force {
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(targetPath + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %s: %w", targetPath+suffix, err)
			}
		}
	}
	if err := os.Rename(tmp, targetPath); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(filepath.Dir(targetPath)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// sqliteIntegrity runs PRAGMA integrity_check and reports its first
// problems on one line.
func sqliteIntegrity(ctx context.Context, db *sql.DB) error {
	var res string
	if err := db.QueryRowContext(ctx, "pragma integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("restored database: integrity_check: %w", err)
	}
	if res == "ok" {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(res), "\n")
	msg := strings.Join(lines[:min(len(lines), 3)], "; ")
	if len(lines) > 3 {
		msg += fmt.Sprintf("; and %d more", len(lines)-3)
	}
	return fmt.Errorf("restored database fails integrity_check: %s", msg)
}

func sqliteWriteTemp(ctx context.Context, src source.Reader, tmp string) error {
	rc, err := src.Open(ctx, DatabasePath)
	if err != nil {
		return fmt.Errorf("open %s: %w", DatabasePath, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("read %s: %w", DatabasePath, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
