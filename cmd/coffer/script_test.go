package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite"

	"github.com/cofferhq/coffer/internal/testing/fixture"
	"github.com/cofferhq/coffer/internal/testing/testutil"
	"github.com/cofferhq/coffer/storage"
)

// TestMain lets the test binary run as the coffer command in scripts (and
// in crash_test.go, which finds it on PATH).
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){
		"coffer": func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
	})
}

// cleanupM removes the files tests share (see crash_test.go) after they
// ran; testscript.Main exits without returning.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	defer removeShared()
	// Tests that run the command in this process (not through a script)
	// remember repositories in a folder of their own, never in the
	// caller's ~/.local/state.
	state, err := os.MkdirTemp("", "coffer-test-state-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(state)
	os.Setenv("COFFER_STATE_DIR", state)
	return c.m.Run()
}

// TestScripts runs the scripts in testdata: every command's main path and
// its errors, against the real command line.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		Setup:               scriptSetup,
		Cmds:                scriptCmds,
		Condition:           scriptCondition,
		RequireExplicitExec: false,
		UpdateScripts:       false,
	})
}

type tKey struct{}

func scriptSetup(env *testscript.Env) error {
	// testscript starts from an almost empty environment; make sure no
	// COFFER_* or AWS_* variable of the caller leaks in, and give the
	// command a home and a cache inside the work folder.
	vars := env.Vars[:0]
	for _, kv := range env.Vars {
		if strings.HasPrefix(kv, "COFFER_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		vars = append(vars, kv)
	}
	env.Vars = vars
	env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
	env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, "cache"))
	// The known-repositories store: what this "client" remembers.
	env.Setenv("COFFER_STATE_DIR", filepath.Join(env.WorkDir, "state"))
	env.Setenv("TZ", "UTC")
	// A binary built with -race sleeps a second when it exits, unless told
	// otherwise; the scripts run coffer a few hundred times.
	if gorace := os.Getenv("GORACE"); !strings.Contains(gorace, "atexit_sleep_ms") {
		env.Setenv("GORACE", strings.TrimSpace(gorace+" atexit_sleep_ms=0"))
	}
	env.Values[tKey{}] = env.T()
	return nil
}

func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "root":
		return os.Geteuid() == 0, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"exits":     cmdExits,
	"mkfiles":   cmdMkfiles,
	"cmpdir":    cmdCmpdir,
	"flipbyte":  cmdFlipbyte,
	"largest":   cmdLargest,
	"truncate":  cmdTruncate,
	"setvar":    cmdSetvar,
	"isjson":    cmdIsJSON,
	"jsonlines": cmdJSONLines,
	"events":    cmdEvents,
	"s3server":  cmdS3Server,
	"s3raw":     cmdS3Raw,
	"sqlite":    cmdSQLite,
	"pgserver":  cmdPgServer,
	"pgdb":      cmdPgDB,
	"pgsql":     cmdPgSQL,
}

// scriptT returns the test of the running script, for helpers that need a
// testing.TB (skipping, cleanups).
func scriptT(ts *testscript.TestScript) testing.TB {
	tb, ok := ts.Value(tKey{}).(testing.TB)
	if !ok {
		ts.Fatalf("the script's T is not a testing.TB")
	}
	return tb
}

// exits N [-max DURATION] PROGRAM ARGS...
//
// runs PROGRAM and checks that it exits with code N (and, with -max,
// within DURATION). For a non-zero N it also checks stderr the way
// STYLE.md asks: exactly one "coffer: error:" line, at most one
// "coffer: hint:" line, every line starting with "coffer: ", no panic.
// Exit 4 (a snapshot saved, incomplete) is no error: it wants warnings
// and no "coffer: error:" line.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits N [-max DURATION] PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	args = args[1:]
	var max time.Duration
	if args[0] == "-max" && len(args) > 2 {
		max, err = time.ParseDuration(args[1])
		ts.Check(err)
		args = args[2:]
	}
	start := time.Now()
	err = ts.Exec(args[0], args[1:]...)
	took := time.Since(start)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[0], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[0], got, want)
	}
	if max > 0 && took > max {
		ts.Fatalf("%s took %s, want at most %s", args[0], took.Round(time.Millisecond), max)
	}
	stderr, stdout := ts.ReadFile("stderr"), ts.ReadFile("stdout")
	// Under --json a long command's warnings and error are events on
	// stdout, and stderr stays empty.
	events := stderr == "" && strings.HasPrefix(stdout, `{"event":"start"`)
	switch {
	case events && want != 0:
		last, msg := checkEvents(stdout)
		if msg == "" && want == exitIncomplete && (last != "end" || !strings.Contains(stdout, `"event":"warning"`)) {
			msg = "exit 4 wants warning events and an end event"
		}
		if msg == "" && want != exitIncomplete && last != "error" {
			msg = fmt.Sprintf("the last event is %q, want error", last)
		}
		if msg != "" {
			ts.Fatalf("stdout: %s", msg)
		}
	case want == exitIncomplete:
		if msg := checkIncompleteOutput(stderr); msg != "" {
			ts.Fatalf("stderr: %s", msg)
		}
	case want != 0:
		if msg := checkErrorOutput(stderr); msg != "" {
			ts.Fatalf("stderr: %s", msg)
		}
	}
}

// checkEvents checks a stream of JSON events: every line one JSON object
// with an "event", the first "start", "error" only last, "end" last or
// followed by the error of a command that failed after its result, an
// error with its message and exit code, no null anywhere (lists are []).
// It returns the last event's name and what is wrong, or "".
func checkEvents(stdout string) (last, msg string) {
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	for i, l := range lines {
		var ev struct {
			Event string `json:"event"`
			Error string `json:"error"`
			Exit  *int   `json:"exit"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			return "", fmt.Sprintf("line %d %q does not parse: %v", i+1, l, err)
		}
		switch {
		case ev.Event == "":
			return "", fmt.Sprintf("line %d %q has no event", i+1, l)
		case i == 0 && ev.Event != "start":
			return "", fmt.Sprintf("the first event is %q, want start", ev.Event)
		case ev.Event == "error" && i != len(lines)-1,
			last == "end" && ev.Event != "error":
			return "", fmt.Sprintf("event %q on line %d follows the end", ev.Event, i+1)
		case ev.Event == "error" && (ev.Error == "" || ev.Exit == nil):
			return "", fmt.Sprintf("error event %q lacks error or exit", l)
		case strings.Contains(l, ":null"):
			return "", fmt.Sprintf("line %d %q holds a null", i+1, l)
		}
		last = ev.Event
	}
	return last, ""
}

// events [end|error]: the last command's stdout is a stream of JSON
// events (checkEvents) that ends with an end event (or the one named).
func cmdEvents(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: events [end|error]")
	}
	want := "end"
	if len(args) == 1 {
		want = args[0]
	}
	last, msg := checkEvents(ts.ReadFile("stdout"))
	if msg == "" && last != want {
		msg = fmt.Sprintf("the last event is %q, want %q", last, want)
	}
	if msg != "" {
		ts.Fatalf("stdout: %s", msg)
	}
}

// checkErrorOutput returns what is wrong with a failed command's stderr, or
// "".
func checkErrorOutput(stderr string) string {
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
		return "a Go panic or stack trace"
	}
	errs, hints := 0, 0
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "coffer: error: "):
			errs++
		case strings.HasPrefix(l, "coffer: hint: "):
			hints++
		case strings.HasPrefix(l, "coffer: warning: "):
		case strings.HasPrefix(l, "{"):
			// Under --json: {"error": "...", "hint": "...", "exit": N}.
			var e struct {
				Event string `json:"event"`
				Error string `json:"error"`
				Exit  *int   `json:"exit"`
			}
			if json.Unmarshal([]byte(l), &e) == nil && e.Event == "warning" {
				continue
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil || e.Error == "" || e.Exit == nil {
				return fmt.Sprintf("line %q is not a JSON error object", l)
			}
			errs++
		default:
			return fmt.Sprintf("line %q is not a coffer: error/hint/warning line", l)
		}
	}
	switch {
	case errs != 1:
		return fmt.Sprintf("%d coffer: error: lines, want 1", errs)
	case hints > 1:
		return fmt.Sprintf("%d coffer: hint: lines, want at most 1", hints)
	}
	return ""
}

// checkIncompleteOutput returns what is wrong with the stderr of a
// backup that exited 4, or "": only "coffer: warning:" lines, at least
// one.
func checkIncompleteOutput(stderr string) string {
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
		return "a Go panic or stack trace"
	}
	warnings := 0
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "coffer: warning: ") {
			return fmt.Sprintf("line %q is not a coffer: warning: line", l)
		}
		warnings++
	}
	if warnings == 0 {
		return "no coffer: warning: line"
	}
	return ""
}

// mkfiles DIR
//
// creates a small tree with the cases a folder source must keep: nested
// folders, an empty file, an empty folder, modes, unicode names, a
// symlink to a file, a dangling symlink, and old mtimes.
func cmdMkfiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkfiles DIR")
	}
	ts.Check(makeTree(ts.MkAbs(args[0])))
}

func makeTree(root string) error {
	rnd := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	files := []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{"hello.txt", []byte("hello, coffer\n"), 0o644},
		{"empty", nil, 0o644},
		{"run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"private.txt", []byte("only me\n"), 0o600},
		{"sub/deeper/data.bin", big, 0o640},
		{"sub/deeper/copy.bin", big, 0o644},
		{"ünïcødé/日本語 ファイル.txt", []byte("こんにちは\n"), 0o644},
	}
	old := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
		if err := os.Chtimes(p, old, old); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0o700); err != nil {
		return err
	}
	if err := os.Symlink("hello.txt", filepath.Join(root, "link")); err != nil {
		return err
	}
	return os.Symlink("../nowhere", filepath.Join(root, "sub", "dangling"))
}

// cmpdir A B
//
// compares two trees: the same entries, types, permission bits, file
// contents and mtimes, and symlink targets.
func cmdCmpdir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: cmpdir A B")
	}
	err := compareTrees(ts.MkAbs(args[0]), ts.MkAbs(args[1]))
	switch {
	case neg && err == nil:
		ts.Fatalf("%s and %s are the same", args[0], args[1])
	case !neg && err != nil:
		ts.Fatalf("%v", err)
	}
}

func compareTrees(a, b string) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		seen[rel] = true
		if rel == "." {
			return nil
		}
		ai, err := os.Lstat(p)
		if err != nil {
			return err
		}
		bp := filepath.Join(b, rel)
		bi, err := os.Lstat(bp)
		if err != nil {
			return fmt.Errorf("%s: missing in %s", rel, b)
		}
		if ai.Mode().Type() != bi.Mode().Type() {
			return fmt.Errorf("%s: type %v, want %v", rel, bi.Mode().Type(), ai.Mode().Type())
		}
		switch {
		case ai.Mode()&fs.ModeSymlink != 0:
			at, _ := os.Readlink(p)
			bt, _ := os.Readlink(bp)
			if at != bt {
				return fmt.Errorf("%s: link to %q, want %q", rel, bt, at)
			}
			return nil
		case ai.Mode().IsRegular():
			ad, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			bd, err := os.ReadFile(bp)
			if err != nil {
				return err
			}
			if !bytes.Equal(ad, bd) {
				return fmt.Errorf("%s: contents differ", rel)
			}
			if !ai.ModTime().Equal(bi.ModTime()) {
				return fmt.Errorf("%s: mtime %s, want %s", rel, bi.ModTime(), ai.ModTime())
			}
		}
		if ai.Mode().Perm() != bi.Mode().Perm() {
			return fmt.Errorf("%s: mode %v, want %v", rel, bi.Mode().Perm(), ai.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b, p)
		if !seen[rel] {
			return fmt.Errorf("%s: in %s but not in %s", rel, b, a)
		}
		return nil
	})
}

// onlyFile returns the one file that the glob pattern names.
func onlyFile(ts *testscript.TestScript, pattern string) string {
	ms, err := filepath.Glob(ts.MkAbs(pattern))
	ts.Check(err)
	var files []string
	for _, m := range ms {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
			files = append(files, m)
		}
	}
	if len(files) != 1 {
		ts.Fatalf("%s matches %d files, want 1", pattern, len(files))
	}
	return files[0]
}

// flipbyte FILE|GLOB OFFSET
//
// inverts one byte of a file; a negative OFFSET counts from the end.
func cmdFlipbyte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	p := onlyFile(ts, args[0])
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	b, err := os.ReadFile(p)
	ts.Check(err)
	if off < 0 {
		off += len(b)
	}
	if off < 0 || off >= len(b) {
		ts.Fatalf("offset %s outside %s (%d bytes)", args[1], args[0], len(b))
	}
	b[off] ^= 0xff
	ts.Check(os.WriteFile(p, b, 0o600))
}

// largest VAR GLOB
//
// sets VAR to the path of the largest file GLOB matches (a data pack rather
// than a catalog pack).
func cmdLargest(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: largest VAR GLOB")
	}
	ms, err := filepath.Glob(ts.MkAbs(args[1]))
	ts.Check(err)
	best, size := "", int64(-1)
	for _, m := range ms {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			best, size = m, fi.Size()
		}
	}
	if best == "" {
		ts.Fatalf("%s matches no file", args[1])
	}
	ts.Setenv(args[0], best)
}

// truncate FILE|GLOB N
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE N")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(onlyFile(ts, args[0]), n))
}

// setvar [-q] NAME REGEXP
//
// sets NAME to the first submatch of REGEXP in the last command's stdout
// (multi-line mode: ^ and $ match at line ends); with -q, quoted for use
// inside a regular expression (fingerprints hold + and /).
func cmdSetvar(ts *testscript.TestScript, neg bool, args []string) {
	quote := len(args) > 0 && args[0] == "-q"
	if quote {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setvar [-q] NAME REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("no match for %q in stdout", args[1])
	}
	if quote {
		m[1] = regexp.QuoteMeta(m[1])
	}
	ts.Setenv(args[0], m[1])
}

// isjson [stderr]: the last command's stdout (or stderr) is one JSON value.
func cmdIsJSON(ts *testscript.TestScript, neg bool, args []string) {
	stream := "stdout"
	switch {
	case len(args) == 1 && args[0] == "stderr":
		stream = "stderr"
	case len(args) > 0:
		ts.Fatalf("usage: isjson [stderr]")
	}
	var v any
	err := json.Unmarshal([]byte(ts.ReadFile(stream)), &v)
	switch {
	case neg && err == nil:
		ts.Fatalf("%s is JSON", stream)
	case !neg && err != nil:
		ts.Fatalf("%s is not JSON: %v", stream, err)
	}
}

// jsonlines [stderr]
//
// checks that every line of stdout (or stderr) is one JSON object, as
// --json promises for both streams.
func cmdJSONLines(ts *testscript.TestScript, neg bool, args []string) {
	stream := "stdout"
	switch {
	case len(args) == 1 && args[0] == "stderr":
		stream = "stderr"
	case neg || len(args) > 0:
		ts.Fatalf("usage: jsonlines [stderr]")
	}
	for _, l := range strings.Split(strings.TrimRight(ts.ReadFile(stream), "\n"), "\n") {
		var v map[string]any
		if l != "" && json.Unmarshal([]byte(l), &v) != nil {
			ts.Fatalf("%s: a line is not a JSON object: %q", stream, l)
		}
	}
}

// s3server [-locked]
//
// starts a versitygw for this script (skipping it, or failing under
// COFFER_TEST_REQUIRE_SERVERS=1, when versitygw is missing) and sets
// COFFER_S3_ENDPOINT, the AWS_* credentials and BUCKET, a fresh bucket
// (with object lock enabled with -locked).
func cmdS3Server(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 || (len(args) == 1 && args[0] != "-locked") {
		ts.Fatalf("usage: s3server [-locked]")
	}
	var cfg storage.S3Config
	if len(args) == 1 {
		cfg = testutil.StartS3Locked(scriptT(ts))
	} else {
		cfg = testutil.StartS3(scriptT(ts))
	}
	ts.Setenv("COFFER_S3_ENDPOINT", "http://"+cfg.Endpoint)
	ts.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKey)
	ts.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretKey)
	ts.Setenv("AWS_REGION", cfg.Region)
	ts.Setenv("BUCKET", cfg.Bucket)
}

// s3raw put KEY FILE | s3raw rm KEY
//
// overwrites (a plain PUT) or deletes (no version: a delete marker in a
// versioned bucket) KEY of $BUCKET straight through the S3 API, with the
// script's credentials: what anyone holding them can do.
func cmdS3Raw(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || (args[0] == "put") != (len(args) == 3) || (args[0] != "put" && args[0] != "rm") {
		ts.Fatalf("usage: s3raw put KEY FILE | s3raw rm KEY")
	}
	cfg := storage.S3Config{Endpoint: strings.TrimPrefix(ts.Getenv("COFFER_S3_ENDPOINT"), "http://"), Insecure: true,
		AccessKey: ts.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: ts.Getenv("AWS_SECRET_ACCESS_KEY"), Region: ts.Getenv("AWS_REGION")}
	c, err := testutil.Client(cfg)
	ts.Check(err)
	ctx := context.Background()
	bucket := ts.Getenv("BUCKET")
	if args[0] == "rm" {
		ts.Check(c.RemoveObject(ctx, bucket, args[1], minio.RemoveObjectOptions{}))
		return
	}
	b, err := os.ReadFile(ts.MkAbs(args[2]))
	ts.Check(err)
	_, err = c.PutObject(ctx, bucket, args[1], bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
	ts.Check(err)
}

// sqlite FILE SQL
//
// runs SQL on the SQLite database FILE (created if missing); a query
// prints its rows to stdout, columns separated by "|".
func cmdSQLite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sqlite FILE SQL")
	}
	db, err := sql.Open("sqlite", ts.MkAbs(args[0]))
	ts.Check(err)
	defer db.Close()
	q := strings.TrimSpace(args[1])
	if !strings.HasPrefix(strings.ToLower(q), "select") {
		_, err := db.Exec(q)
		ts.Check(err)
		return
	}
	rows, err := db.Query(q)
	ts.Check(err)
	defer rows.Close()
	cols, err := rows.Columns()
	ts.Check(err)
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		ts.Check(rows.Scan(ptrs...))
		var out []string
		for _, v := range vals {
			out = append(out, v.String)
		}
		fmt.Fprintln(ts.Stdout(), strings.Join(out, "|"))
	}
	ts.Check(rows.Err())
}

// pgserver
//
// skips the script when the PostgreSQL test server (COFFER_TEST_PG, else
// postgres@127.0.0.1:5432) cannot be reached, or fails it under
// COFFER_TEST_REQUIRE_SERVERS=1.
func cmdPgServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: pgserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fixture.AdminDSN())
	if err != nil {
		testutil.Missing(scriptT(ts), "PostgreSQL server (COFFER_TEST_PG): %v", err)
		return
	}
	conn.Close(ctx)
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, ok := testutil.FindBinary(tool); !ok {
			testutil.Missing(scriptT(ts), "%s not installed", tool)
		}
	}
}

// pgdb VAR [create]
//
// sets VAR to the DSN of a database with a fresh unique name, which is
// dropped when the script ends; with "create" the database is created.
func cmdPgDB(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 || (len(args) == 2 && args[1] != "create") {
		ts.Fatalf("usage: pgdb VAR [create]")
	}
	b := make([]byte, 4)
	crand.Read(b)
	name := "coffer_script_" + hex.EncodeToString(b)
	tb := scriptT(ts)
	ts.Defer(func() { fixture.DropPostgresDB(tb, name) })
	if len(args) == 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, fixture.AdminDSN())
		ts.Check(err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
		ts.Check(err)
	}
	ts.Setenv(args[0], fixture.WithDatabase(fixture.AdminDSN(), name))
}

// pgsql DSN SQL
//
// runs SQL; a query prints its rows to stdout, columns separated by "|".
func cmdPgSQL(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: pgsql DSN SQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, args[0])
	ts.Check(err)
	defer conn.Close(ctx)
	q := strings.TrimSpace(args[1])
	if !strings.HasPrefix(strings.ToLower(q), "select") {
		_, err := conn.Exec(ctx, q)
		ts.Check(err)
		return
	}
	rows, err := conn.Query(ctx, q)
	ts.Check(err)
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		ts.Check(err)
		var out []string
		for _, v := range vals {
			out = append(out, fmt.Sprint(v))
		}
		fmt.Fprintln(ts.Stdout(), strings.Join(out, "|"))
	}
	ts.Check(rows.Err())
}
