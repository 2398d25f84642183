package postgres

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testing/fixture"
)

// archiveWriter writes the custom format as pg_dump's WriteHead and
// WriteToc do, for archive versions the server here does not produce.
type archiveWriter struct {
	bytes.Buffer
	minor byte
}

func (w *archiveWriter) int(v int64) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	w.WriteByte(sign)
	for i := 0; i < 4; i++ {
		w.WriteByte(byte(v >> (8 * i)))
	}
}

func (w *archiveWriter) str(s string) {
	w.int(int64(len(s)))
	w.WriteString(s)
}

func (w *archiveWriter) null() { w.int(-1) }

// testArchive returns a custom-format archive of version 1.minor with n
// TOC entries, the length of its header and TOC, and one data block after
// them.
func testArchive(minor, format byte, n int) ([]byte, int) {
	w := &archiveWriter{minor: minor}
	w.WriteString("PGDMP")
	w.Write([]byte{1, minor, 0, 4, 8, format})
	if minor >= 15 {
		w.WriteByte(0) // no compression
	} else {
		w.int(0)
	}
	for _, v := range []int64{1, 2, 3, 30, 10, 126, 0} {
		w.int(v)
	}
	w.str("db")
	w.str("17.0")
	w.str("17.0")
	w.int(int64(n))
	for i := 0; i < n; i++ {
		w.int(int64(i + 1))
		w.int(1)
		w.str("1259")
		w.str("16384")
		w.str("t")
		w.str("TABLE DATA")
		w.int(3)
		w.str("")
		w.str("")
		w.str("COPY public.t (a) FROM stdin;\n")
		w.str("public")
		w.null()
		if minor >= 14 {
			w.str("heap")
		}
		if minor >= 16 {
			w.int('r')
		}
		w.str("postgres")
		w.str("false")
		w.str("1")
		w.null()
		w.WriteByte(1) // K_OFFSET_POS_NOT_SET
		w.Write(make([]byte, 8))
	}
	toc := w.Len()
	w.WriteByte(1) // BLK_DATA
	w.int(1)
	w.str("1\n")
	w.int(0)
	return w.Bytes(), toc
}

func TestPgArchiveTOCLengthVersions(t *testing.T) {
	for _, minor := range []byte{12, 13, 14, 15, 16} {
		b, want := testArchive(minor, pgArchiveCustom, 3)
		got, err := pgArchiveTOCLength(bytes.NewReader(b))
		if err != nil || got != int64(want) {
			t.Errorf("version 1.%d: pgArchiveTOCLength = %d, %v, want %d", minor, got, err, want)
		}
		if _, err := pgArchiveTOCLength(bytes.NewReader(b[:want-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("version 1.%d cut inside the TOC: err = %v, want io.ErrUnexpectedEOF", minor, err)
		}
	}
	v11, _ := testArchive(11, pgArchiveCustom, 1)
	v17, _ := testArchive(17, pgArchiveCustom, 1)
	tar, _ := testArchive(16, 3, 1)
	for name, b := range map[string][]byte{
		"version 1.11": v11, "version 1.17": v17, "tar format": tar,
		"plain SQL": []byte("--\n-- PostgreSQL database dump\n--\n"),
	} {
		if _, err := pgArchiveTOCLength(bytes.NewReader(b)); !errors.Is(err, errArchiveUnsupported) {
			t.Errorf("%s: err = %v, want errArchiveUnsupported", name, err)
		}
	}
	if _, err := pgArchiveTOCLength(bytes.NewReader(nil)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("empty: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestPgArchiveTOCLengthRealDump checks the length against the real
// pg_restore: the archive cut there lists exactly what the whole one lists,
// and a data block starts right after it.
func TestPgArchiveTOCLengthRealDump(t *testing.T) {
	dsn := newRichDB(t)
	snap := backupPostgres(t, &Source{SourceName: "rich", DSN: dsn})
	dump := snap.Files[DumpPath]
	n, err := pgArchiveTOCLength(bytes.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n >= int64(len(dump)) {
		t.Fatalf("TOC length %d of a %d-byte dump", n, len(dump))
	}
	if b := dump[n]; b != 1 && b != 3 { // BLK_DATA, BLK_BLOBS
		t.Errorf("byte after the TOC = %d, want the start of a data block (1 or 3)", b)
	}
	pgRestore, _, err := FindTool("pg_restore", "", "0")
	if err != nil {
		t.Fatal(err)
	}
	list := func(b []byte) (string, error) {
		cmd := exec.Command(pgRestore, "--list")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	whole, err := list(dump)
	if err != nil {
		t.Fatalf("pg_restore --list of the dump: %v: %s", err, whole)
	}
	cut, err := list(dump[:n])
	if err != nil || cut != whole {
		t.Errorf("pg_restore --list of the dump cut after its TOC (%v) differs:\n%s\nwhole:\n%s", err, cut, whole)
	}
	if !strings.Contains(whole, "TABLE DATA public t119") || !strings.Contains(whole, "BLOBS") {
		t.Errorf("the dump lacks the tables or large objects of newRichDB:\n%s", whole)
	}
	if out, err := list(dump[:n-1]); err == nil {
		t.Errorf("pg_restore --list of the dump cut one byte short of its TOC succeeded:\n%s", out)
	}
}

func FuzzPgArchiveTOCLength(f *testing.F) {
	for _, minor := range []byte{12, 14, 15, 16} {
		b, _ := testArchive(minor, pgArchiveCustom, 2)
		f.Add(b)
	}
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := pgArchiveTOCLength(bytes.NewReader(b))
		if err != nil {
			return
		}
		if n > int64(len(b)) {
			t.Fatalf("TOC length %d of %d bytes", n, len(b))
		}
		if m, err := pgArchiveTOCLength(bytes.NewReader(b[:n])); err != nil || m != n {
			t.Fatalf("the archive cut after its TOC: %d, %v, want %d", m, err, n)
		}
	})
}

// newRichDB returns the DSN of a new database with many tables (each with
// a primary key, an index and a comment, in a chain of foreign keys), a
// view, a materialized view with an index, a sequence, a trigger, column
// and table grants, and large objects.
func newRichDB(t *testing.T) string {
	t.Helper()
	reader := newRole(t, "coffer_test_reader") // dropped after the database
	dsn := fixture.NewPostgresDB(t)
	r := `"` + reader + `"`
	pgExec(t, dsn,
		`do $$ begin
		   for i in 0..119 loop
		     execute format('create table t%s (id int primary key, parent int %s, v text not null, n numeric(10,2))',
		       i, case when i > 0 then format('references t%s (id)', i - 1) else '' end);
		     execute format('insert into t%s select g, case when %s > 0 and g <= 50 then g end, md5(g::text), g / 7.0 from generate_series(1, 50 + %s * 3) g', i, i, i);
		     execute format('create index t%s_v on t%s (v)', i, i);
		     execute format('comment on index t%s_v is %L', i, 'index ' || i);
		   end loop;
		 end $$`,
		`create table big (id bigint generated always as identity primary key, payload text, at timestamptz default now())`,
		`insert into big (payload) select repeat(md5(g::text), 8) from generate_series(1, 20000) g`,
		`create index big_payload on big (left(payload, 8))`,
		`comment on table big is 'the big one'`,
		`grant select on t0, big to `+r,
		`grant update (v) on t1 to `+r,
		`create view v0 as select id, v from t0`,
		`grant select on v0 to `+r,
		`create materialized view mv as select count(*) as n from big`,
		`create unique index mv_n on mv (n)`,
		`create sequence s`,
		`select setval('s', 4242)`,
		`create function touch() returns trigger language plpgsql as $$ begin new.v := lower(new.v); return new; end $$`,
		`create trigger t0_touch before update on t0 for each row execute function touch()`,
		`select lo_from_bytea(0, convert_to(repeat('large object ', 1000 * g), 'UTF8')) from generate_series(1, 3) g`,
	)
	return dsn
}
