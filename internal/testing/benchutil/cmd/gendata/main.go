// Command gendata writes a deterministic folder that resembles an invoice
// archive, for scripts/bench.sh: many small JSON and CSV invoices, PDF-like
// incompressible documents, and a few 50-100 MB exports and archives.
//
//	gendata -dir DIR -mb 1024 [-seed 1] [-large=true]
//
// The same -mb and -seed always give the same files (names and bytes). The
// shares by bytes are about 35% small invoices, 40% documents and 25% large
// files (half compressible CSV/JSON exports, half incompressible archives).
// With -large=false (used for the "1% new files" step) there are no large
// files and the small invoices and documents share the bytes.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer/internal/testing/benchutil"
)

func main() {
	dir := flag.String("dir", "", "output folder (created; must not exist)")
	mb := flag.Int64("mb", 1024, "approximate total size in MiB")
	seed := flag.Uint64("seed", 1, "seed")
	large := flag.Bool("large", true, "include a few 50-100 MB files")
	files := flag.Int("files", 0, "instead: this many small invoice files (150-700 bytes), 1,000 a folder")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gendata: -dir is required")
		os.Exit(2)
	}
	if _, err := os.Stat(*dir); err == nil {
		fmt.Fprintf(os.Stderr, "gendata: %s already exists\n", *dir)
		os.Exit(2)
	}
	if *files > 0 {
		n, err := benchutil.GenerateSmallFiles(*dir, *files, *seed)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gendata:", err)
			os.Exit(1)
		}
		fmt.Printf("gendata: %s: %d small files, %d bytes\n", filepath.Clean(*dir), *files, n)
		return
	}
	st, err := benchutil.GenerateTree(*dir, *mb<<20, *seed, *large)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "gendata: %s: %d files, %d bytes (%d small invoices, %d documents, %d large)\n",
		filepath.Clean(*dir), st.Files, st.Bytes, st.Small, st.Docs, st.Large)
	w.Flush()
}
