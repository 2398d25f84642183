// Command coffer makes encrypted, verifiable backups of an Apache Airflow
// deployment: its metadata database, DAG repository and invoice stores.
//
// Exit codes: 0 ok, 1 failure, 2 usage, 3 integrity failure, 4 snapshot
// saved, incomplete, 130 interrupted.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/cofferhq/coffer/internal/memlimit"
)

func main() {
	// GOGC 50, and a soft memory limit a little above the pipeline's
	// buffers (40 MiB + 12 MiB per GOMAXPROCS) that keeps the heap's GC
	// headroom from adding to the peak RSS (internal/memlimit,
	// doc/deploy.md). GOGC and GOMEMLIMIT override, "off" for none.
	memlimit.Configure(os.Getenv)
	// COFFER_MEMPROFILE=FILE writes a heap profile near the peak of the
	// live heap, for benchmarks.
	if p := os.Getenv("COFFER_MEMPROFILE"); p != "" {
		go heapAtPeak(p)
	}
	// COFFER_CPUPROFILE=FILE writes a CPU profile, for benchmarks.
	if p := os.Getenv("COFFER_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			code := run(os.Args, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main without the exit, so testscript can call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(stdout, stderr)
	if n := len(args); n == 0 || args[n-1] != "--generate-bash-completion" {
		// The completion flag must stay last.
		args = interleave(app, args)
	} else if n >= 2 && args[n-2] == "--" {
		// "coffer backup --<TAB>": a bare -- would end the flags and hide
		// the completion flag; "-" asks for every flag alike.
		args = append(append([]string{}, args[:n-2]...), "-", args[n-1])
	}
	err := app.RunContext(ctx, args)
	g, _ := app.Metadata["globals"].(*globals)
	if g != nil && g.run != nil {
		g.run.halt()
		// Under --json a long command's stdout is a stream of events: its
		// error is the last of them.
		if g.run.events {
			stderr = stdout
		}
	}
	return report(ctx, stderr, err, (g != nil && g.json) || jsonArg(args))
}

// jsonArg reports whether args ask for --json, for errors found before
// the configuration is loaded (a bad flag, a broken config file).
func jsonArg(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "-json" || a == "--json=true" {
			return true
		}
	}
	return false
}
