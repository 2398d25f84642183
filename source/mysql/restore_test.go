package mysql_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/restore"
	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/mysql"
)

// mysqlMem is an in-memory snapshot of one source: a source.Writer and a
// source.Reader.
type mysqlMem struct {
	name, kind string
	files      map[string][]byte
	entries    []source.Entry
	meta       map[string][]byte
	warnings   []string
	// midDump, when set, runs once after the first 4 KiB of a file were
	// read, while the source is still dumping.
	midDump func()
}

var (
	_ source.Writer = (*mysqlMem)(nil)
	_ source.Reader = (*mysqlMem)(nil)
)

func newMySQLMem(name string) *mysqlMem {
	return &mysqlMem{name: name, kind: "mysql", files: map[string][]byte{}, meta: map[string][]byte{}}
}

func (m *mysqlMem) WriteFile(ctx context.Context, e source.Entry, r io.Reader) error {
	var buf bytes.Buffer
	if m.midDump != nil {
		if _, err := io.CopyN(&buf, r, 4096); err != nil && err != io.EOF {
			return err
		}
		m.midDump()
	}
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	m.files[e.Path] = buf.Bytes()
	m.entries = append(m.entries, e)
	return nil
}

func (m *mysqlMem) WriteEntry(ctx context.Context, e source.Entry) error {
	m.entries = append(m.entries, e)
	return nil
}

func (m *mysqlMem) SetMeta(key string, v any) error {
	b, err := json.Marshal(v)
	m.meta[key] = b
	return err
}

func (m *mysqlMem) Warn(format string, args ...any) error {
	m.warnings = append(m.warnings, fmt.Sprintf(format, args...))
	return nil
}

func (m *mysqlMem) Name() string            { return m.name }
func (m *mysqlMem) Kind() string            { return m.kind }
func (m *mysqlMem) Entries() []source.Entry { return m.entries }

func (m *mysqlMem) Meta(key string, v any) error {
	b, ok := m.meta[key]
	if !ok {
		return fmt.Errorf("%w %q", restore.ErrNoMeta, key)
	}
	return json.Unmarshal(b, v)
}

func (m *mysqlMem) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	b, ok := m.files[path]
	if !ok {
		return nil, fmt.Errorf("no file %s", path)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *mysqlMem) fingerprints(t testing.TB) fingerprint.Fingerprints {
	t.Helper()
	var fp fingerprint.Fingerprints
	if err := m.Meta(fingerprint.MetaKey, &fp); err != nil {
		t.Fatal(err)
	}
	return fp
}

var mysqlChecks = []fingerprint.Check{
	{Name: "paid_total", Query: "select count(*), sum(total) from invoice where status = 'paid'"},
	{Name: "open_by_currency", Query: "select currency, count(*), sum(total) from invoice where status = 'open' group by currency order by currency"},
}

// mysqlInvoices returns the DSN of a new test database holding the invoice
// fixture.
func mysqlInvoices(t testing.TB, invoices int) string {
	t.Helper()
	dsn := fixture.NewMySQLDB(t)
	size := fixture.Size{Vendors: 24, Invoices: invoices, LinesPerInvoice: 3}
	if err := fixture.CreateMySQL(context.Background(), dsn, size, 42); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func mysqlBackup(t testing.TB, dsn string, mem *mysqlMem) {
	t.Helper()
	src := &mysql.Source{SourceName: "invoices", DSN: dsn, Checks: mysqlChecks}
	if err := src.Backup(context.Background(), mem); err != nil {
		t.Fatalf("backup: %v", err)
	}
}

// mysqlTarget returns the DSN of a database name that does not exist yet
// and drops that database when the test ends.
func mysqlTarget(t testing.TB) (dsn, name string) {
	t.Helper()
	admin := fixture.MySQLAdmin(t)
	var b [5]byte
	rand.Read(b[:])
	name = "coffer_restore_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	})
	return mysqlWithDB(t, fixture.MySQLAdminDSN(), name), name
}

func mysqlWithDB(t testing.TB, dsn, db string) string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = db
	return cfg.FormatDSN()
}

func mysqlDBName(t testing.TB, dsn string) string {
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DBName
}

func mysqlOpen(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mysqlExists(t testing.TB, name string) bool {
	t.Helper()
	var n int
	err := fixture.MySQLAdmin(t).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// mysqlLeftovers lists databases a restore into name may have left.
func mysqlLeftovers(t testing.TB, name string) []string {
	t.Helper()
	rows, err := fixture.MySQLAdmin(t).Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", name+"\\_coffer\\_%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// mysqlTableSums checksums every base table independently of coffer: the
// MD5 of all rows in primary key order, every column hex-encoded.
func mysqlTableSums(t testing.TB, dsn string) map[string]string {
	t.Helper()
	db := mysqlOpen(t, dsn)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"SET SESSION group_concat_max_len = 1073741824", "SET SESSION time_zone = '+00:00'"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT c.TABLE_NAME, GROUP_CONCAT(CONCAT('COALESCE(HEX(`+"`"+`', c.COLUMN_NAME, '`+"`"+`), ''N'')') ORDER BY c.ORDINAL_POSITION SEPARATOR ', ')
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES t USING (TABLE_SCHEMA, TABLE_NAME)
		WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' GROUP BY c.TABLE_NAME`)
	if err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{}
	for rows.Next() {
		var table, expr string
		if err := rows.Scan(&table, &expr); err != nil {
			t.Fatal(err)
		}
		exprs[table] = expr
	}
	rows.Close()
	sums := map[string]string{}
	for table, expr := range exprs {
		var n int64
		var sum sql.NullString
		q := fmt.Sprintf("SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', %s) ORDER BY id SEPARATOR '\\n')) FROM `%s`", expr, table)
		if err := conn.QueryRowContext(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("checksum %s: %v", table, err)
		}
		sums[table] = fmt.Sprintf("%d rows, md5 %s", n, sum.String)
	}
	return sums
}

func mysqlCompareSums(t testing.TB, want, got map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("no tables checksummed")
	}
	for table, w := range want {
		if g := got[table]; g != w {
			t.Errorf("table %s: source %s, restored %s", table, w, g)
		}
	}
	if len(got) != len(want) {
		t.Errorf("restored has %d tables, source %d", len(got), len(want))
	}
}

func TestMySQLRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := mysqlInvoices(t, 300)
	mem := newMySQLMem("invoices")
	mysqlBackup(t, src, mem)
	if len(mem.warnings) > 0 {
		t.Errorf("warnings: %q", mem.warnings)
	}
	if got, want := len(mem.entries), 1; got != want {
		t.Fatalf("%d entries, want %d", got, want)
	}
	if e := mem.entries[0]; e.Path != mysql.DumpFile || e.Size != -1 || e.Type != source.TypeFile {
		t.Errorf("entry = %+v", e)
	}
	fp := mem.fingerprints(t)
	if got, want := fp.Tables["invoice"], int64(300); got != want {
		t.Errorf("fingerprint of invoice = %d rows, want %d", got, want)
	}
	if got, want := len(fp.Tables), 6; got != want {
		t.Errorf("fingerprints cover %d tables, want %d: %v", got, want, fp.Tables)
	}
	if len(fp.Checks["paid_total"]) != 1 {
		t.Errorf("check paid_total = %q", fp.Checks["paid_total"])
	}
	var info mysql.Info
	if err := mem.Meta(mysql.MetaKey, &info); err != nil {
		t.Fatal(err)
	}
	if info.Database != mysqlDBName(t, src) || info.ServerUUID == "" || info.ServerVersion == "" {
		t.Errorf("mysql meta = %+v", info)
	}

	target, name := mysqlTarget(t)
	if _, err := mysql.Restore(ctx, mem, target, mysql.Options{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	mysqlCompareSums(t, mysqlTableSums(t, src), mysqlTableSums(t, target))

	db := mysqlOpen(t, target)
	// The view and the trigger came along, and work.
	var views, triggers int
	db.QueryRow("SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'open_invoice_total'", name).Scan(&views)
	db.QueryRow("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = 'invoice_status_audit'", name).Scan(&triggers)
	if views != 1 || triggers != 1 {
		t.Fatalf("restored database has %d views, %d triggers named like the source's, want 1 and 1", views, triggers)
	}
	sumView := func(d *sql.DB) string {
		var n, total string
		if err := d.QueryRow("SELECT COUNT(*), SUM(open_total) FROM open_invoice_total").Scan(&n, &total); err != nil {
			t.Fatal(err)
		}
		return n + " " + total
	}
	if got, want := sumView(db), sumView(mysqlOpen(t, src)); got != want {
		t.Errorf("view on restored = %s, on source %s", got, want)
	}
	if _, err := db.Exec("UPDATE invoice SET status = 'void' WHERE status = 'open' ORDER BY id LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	var audits int
	db.QueryRow("SELECT COUNT(*) FROM invoice_audit WHERE new_status = 'void'").Scan(&audits)
	if audits != 1 {
		t.Errorf("trigger wrote %d audit rows, want 1", audits)
	}

	// Unicode and binary values, compared as Go values too.
	var names string
	db.QueryRow("SELECT GROUP_CONCAT(name ORDER BY id SEPARATOR '|') FROM vendor WHERE id <= 8").Scan(&names)
	for _, want := range []string{"Müller & Söhne", "株式会社", "O'Brien", "🚚", `Back\slash "Quoted"`} {
		if !strings.Contains(names, want) {
			t.Errorf("restored vendor names %q lack %q", names, want)
		}
	}
	var logo, srcLogo []byte
	const longest = "SELECT logo FROM vendor ORDER BY LENGTH(logo) DESC, id LIMIT 1"
	db.QueryRow(longest).Scan(&logo)
	mysqlOpen(t, src).QueryRow(longest).Scan(&srcLogo)
	if len(srcLogo) < 4 || srcLogo[0] != 0 || !bytes.Equal(logo, srcLogo) {
		t.Errorf("logo restored %x, source %x", logo, srcLogo)
	}
	if got := mysqlLeftovers(t, name); len(got) > 0 {
		t.Errorf("leftover databases %v", got)
	}
}

func TestMySQLDumpDeterministic(t *testing.T) {
	src := mysqlInvoices(t, 200)
	a, b := newMySQLMem("invoices"), newMySQLMem("invoices")
	mysqlBackup(t, src, a)
	mysqlBackup(t, src, b)
	if !bytes.Equal(a.files[mysql.DumpFile], b.files[mysql.DumpFile]) {
		t.Fatal("two dumps of an unchanged database differ")
	}
	dump := a.files[mysql.DumpFile]
	if !bytes.HasSuffix(dump, []byte("-- coffer: end\n")) {
		t.Errorf("dump does not end with the end marker")
	}
	if bytes.Contains(dump, []byte("Müller")) {
		t.Errorf("dump holds character data unencoded")
	}
}

func TestMySQLConsistentUnderLoad(t *testing.T) {
	ctx := context.Background()
	src := mysqlInvoices(t, 2000)
	mem := newMySQLMem("invoices")

	var writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writerErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seed := int64(1); ; seed++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := fixture.MutateMySQL(ctx, src, 0.01, seed); err != nil {
				writerErr = err
				return
			}
			writes.Add(1)
		}
	}()
	// The dump is under way (fingerprints taken, first rows read) when the
	// writer must have committed several transactions.
	var during int64
	mem.midDump = func() {
		start := writes.Load()
		deadline := time.Now().Add(10 * time.Second)
		for writes.Load() < start+3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		during = writes.Load() - start
	}
	mysqlBackup(t, src, mem)
	close(stop)
	wg.Wait()
	if writerErr != nil {
		t.Fatalf("writer: %v", writerErr)
	}
	if during < 3 {
		t.Fatalf("only %d writes committed during the dump", during)
	}

	want := mem.fingerprints(t)
	target, _ := mysqlTarget(t)
	if _, err := mysql.Restore(ctx, mem, target, mysql.Options{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got := fingerprintsOf(t, target)
	if diffs := fingerprint.Compare(want, got); len(diffs) > 0 {
		t.Errorf("restored database differs from the backup-time fingerprints: %v", diffs)
	}
	live := fingerprintsOf(t, src)
	if diffs := fingerprint.Compare(want, live); len(diffs) == 0 {
		t.Errorf("the live database still equals the backup after %d concurrent writes", writes.Load())
	}
}

func fingerprintsOf(t testing.TB, dsn string) fingerprint.Fingerprints {
	t.Helper()
	db := mysqlOpen(t, dsn)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fp, err := mysql.SnapshotFingerprints(context.Background(), conn, mysqlChecks)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestMySQLRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	src := mysqlInvoices(t, 50)
	mem := newMySQLMem("invoices")
	mysqlBackup(t, src, mem)
	srcName := mysqlDBName(t, src)
	srcSums := mysqlTableSums(t, src)

	t.Run("target exists", func(t *testing.T) {
		target, name := mysqlTarget(t)
		fixture.MySQLAdmin(t).Exec("CREATE DATABASE `" + name + "`")
		_, err := mysql.Restore(ctx, mem, target, mysql.Options{})
		if err == nil || !strings.Contains(err.Error(), "already exists") || !errors.Is(err, source.ErrTargetExists) {
			t.Fatalf("err = %v, want already exists (source.ErrTargetExists, which Replace allows)", err)
		}
		var n int
		mysqlOpen(t, target).QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", name).Scan(&n)
		if n != 0 {
			t.Errorf("existing target got %d tables", n)
		}
	})
	t.Run("over source", func(t *testing.T) {
		for _, opts := range []mysql.Options{{}, {Replace: true}} {
			_, err := mysql.Restore(ctx, mem, src, opts)
			if err == nil || !strings.Contains(err.Error(), "taken from") || !errors.Is(err, source.ErrRestoreOverSource) {
				t.Fatalf("%+v: err = %v, want a refusal that Force allows (source.ErrRestoreOverSource)", opts, err)
			}
		}
		mysqlCompareSums(t, srcSums, mysqlTableSums(t, src))
		if got := mysqlLeftovers(t, srcName); len(got) > 0 {
			t.Errorf("leftover databases %v", got)
		}
	})
	t.Run("truncated dump", func(t *testing.T) {
		dump := mem.files[mysql.DumpFile]
		for _, cut := range []int{len(dump) / 2, bytes.LastIndex(dump, []byte("SET SESSION foreign_key_checks = 1"))} {
			bad := *mem
			bad.files = map[string][]byte{mysql.DumpFile: dump[:cut]}
			target, name := mysqlTarget(t)
			_, err := mysql.Restore(ctx, &bad, target, mysql.Options{})
			if err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("cut at %d: err = %v, want truncated", cut, err)
			}
			if mysqlExists(t, name) {
				t.Errorf("cut at %d: restore left database %s behind", cut, name)
			}
		}
	})
	t.Run("corrupted dump", func(t *testing.T) {
		dump := bytes.Clone(mem.files[mysql.DumpFile])
		i := bytes.Index(dump, []byte("INSERT INTO `invoice` "))
		copy(dump[i:], "INSERT INTA")
		bad := *mem
		bad.files = map[string][]byte{mysql.DumpFile: dump}
		target, name := mysqlTarget(t)
		_, err := mysql.Restore(ctx, &bad, target, mysql.Options{})
		if err == nil || !strings.Contains(err.Error(), "INSERT INTA") {
			t.Fatalf("err = %v, want an SQL error naming the statement", err)
		}
		if mysqlExists(t, name) {
			t.Errorf("restore left database %s behind", name)
		}
	})
	t.Run("fingerprint mismatch", func(t *testing.T) {
		fp := mem.fingerprints(t)
		fp.Tables["invoice"]++
		bad := *mem
		bad.meta = map[string][]byte{}
		for k, v := range mem.meta {
			bad.meta[k] = v
		}
		bad.SetMeta(fingerprint.MetaKey, fp)
		target, name := mysqlTarget(t)
		_, err := mysql.Restore(ctx, &bad, target, mysql.Options{})
		var mm *fingerprint.MismatchError
		if !errors.As(err, &mm) || len(mm.Diffs) != 1 || mm.Diffs[0].What != "table invoice" {
			t.Fatalf("err = %v, want a mismatch of table invoice", err)
		}
		if mysqlExists(t, name) {
			t.Errorf("restore left database %s behind", name)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		_, err := mysql.Restore(ctx, mem, "root@tcp(127.0.0.1:1)/x", mysql.Options{})
		if err == nil || !strings.Contains(err.Error(), "cannot reach server 127.0.0.1:1") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestMySQLRestoreReplace(t *testing.T) {
	ctx := context.Background()
	src := mysqlInvoices(t, 80)
	mem := newMySQLMem("invoices")
	mysqlBackup(t, src, mem)

	// An existing target with other tables, a view and a trigger.
	target, name := mysqlTarget(t)
	admin := fixture.MySQLAdmin(t)
	for _, q := range []string{
		"CREATE DATABASE `" + name + "`",
		"CREATE TABLE `" + name + "`.invoice (id INT PRIMARY KEY, junk TEXT)",
		"CREATE TABLE `" + name + "`.stale (id INT PRIMARY KEY)",
		"CREATE VIEW `" + name + "`.stale_view AS SELECT id FROM `" + name + "`.stale",
		"CREATE TRIGGER `" + name + "`.stale_trg BEFORE INSERT ON `" + name + "`.stale FOR EACH ROW SET NEW.id = NEW.id + 1",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := mysql.Restore(ctx, mem, target, mysql.Options{})
	if err == nil || !errors.Is(err, source.ErrTargetExists) {
		t.Fatalf("without Replace: err = %v, want source.ErrTargetExists", err)
	}
	if _, err := mysql.Restore(ctx, mem, target, mysql.Options{Replace: true}); err != nil {
		t.Fatalf("replace: %v", err)
	}
	mysqlCompareSums(t, mysqlTableSums(t, src), mysqlTableSums(t, target))
	var objs []string
	rows, err := admin.Query(`SELECT CONCAT('table ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
		UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1`, name, name)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		objs = append(objs, s)
	}
	rows.Close()
	want := "table credit_note, table invoice, table invoice_audit, table invoice_line, table open_invoice_total, table payment, table vendor, trigger invoice_status_audit"
	if got := strings.Join(objs, ", "); got != want {
		t.Errorf("after replace: %s\nwant %s", got, want)
	}
	if got := mysqlLeftovers(t, name); len(got) > 0 {
		t.Errorf("leftover databases %v", got)
	}
	// Force allows replacing the source with its own snapshot.
	if _, err := mysql.Restore(ctx, mem, src, mysql.Options{Replace: true, Force: true}); err != nil {
		t.Fatalf("replace source with --force: %v", err)
	}
	mysqlCompareSums(t, mysqlTableSums(t, target), mysqlTableSums(t, src))
}

// TestMySQLEndToEnd goes through the real pipeline: chunked, compressed and
// encrypted into a local repository, then restored from it.
func TestMySQLEndToEnd(t *testing.T) {
	ctx := context.Background()
	src := mysqlInvoices(t, 300)
	tr := testrepo.New(t)
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing, Sources: []source.Source{
		&mysql.Source{SourceName: "invoices", DSN: src, Checks: mysqlChecks},
	}})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}

	snap, err := restore.Load(ctx, tr.Operator(t), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Source("invoices")
	if err != nil {
		t.Fatal(err)
	}
	target, _ := mysqlTarget(t)
	if _, err := mysql.Restore(ctx, s, target, mysql.Options{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	mysqlCompareSums(t, mysqlTableSums(t, src), mysqlTableSums(t, target))
}
