// Command benchreport turns the hyperfine JSON exports, peak-RSS files and
// command outputs that scripts/bench.sh and scripts/bench-postgres.sh
// collect into one Markdown summary.
//
//	benchreport -title T [-json results.json] [-svg ratios.svg] ROWS.tsv... > results.md
//
// Each line of ROWS.tsv is: section, name (hyperfine -n), hyperfine JSON
// (a glob: the rounds of an alternating run are merged), RSS file (one peak RSS in KiB per run, from /usr/bin/time -f %M; "-" if
// none), output kind (coffer, restic, file, none) and output path. The first
// row of a section is coffer's reference; every other row gets the ratio
// coffer median / its median. -json writes every row with its figures,
// -svg a bar chart of the ratios (see chart.go).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

type hfResult struct {
	Command string    `json:"command"`
	Mean    float64   `json:"mean"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Times   []float64 `json:"times"`
}

type row struct {
	section, name, jsonPath, rssPath, kind, out string
}

func main() {
	title := flag.String("title", "coffer benchmarks", "heading")
	jsonOut := flag.String("json", "", "also write the rows as JSON to this file")
	svgOut := flag.String("svg", "", "also write a chart of the ratios (SVG) to this file")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: benchreport -title T [-json FILE] [-svg FILE] ROWS.tsv...")
		os.Exit(2)
	}
	var rows []row
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fail(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			p := strings.Split(sc.Text(), "\t")
			if len(p) != 6 {
				continue
			}
			rows = append(rows, row{p[0], p[1], p[2], p[3], p[4], p[5]})
		}
		f.Close()
	}
	var results []Result
	defer func() {
		if *jsonOut != "" {
			b, err := json.MarshalIndent(results, "", "  ")
			if err == nil {
				err = os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
			}
			if err != nil {
				fail(err)
			}
		}
		if *svgOut != "" {
			if err := os.WriteFile(*svgOut, chart(*title, results), 0o644); err != nil {
				fail(err)
			}
		}
	}()
	fmt.Printf("## %s\n\n", *title)
	section := ""
	var ref float64
	for _, r := range rows {
		res, err := load(r.jsonPath, r.name)
		if err != nil {
			fail(err)
		}
		if r.section != section {
			section = r.section
			ref = res.Median
			fmt.Printf("\n### %s\n\n", section)
			fmt.Println("| command | median s | min-max s | runs | coffer ÷ this | peak RSS MiB | new bytes | stored bytes |")
			fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
		}
		ratio := "ref"
		out1 := Result{Section: section, Name: r.name, Median: res.Median, Min: res.Min, Max: res.Max,
			Runs: len(res.Times)}
		if r == rowsFirst(rows, section) {
			ratio = "1.00 (ref)"
			out1.Reference = true
		} else if res.Median > 0 {
			ratio = fmt.Sprintf("%.2f", ref/res.Median)
			out1.Ratio = ref / res.Median
		}
		out, repoDir, base := strings.Cut(r.out, ",")
		newB, storedB := outBytes(r.kind, out)
		if base {
			// "OUT,REPO[,BASEBYTES]": stored bytes are what REPO grew by.
			dir, b, _ := strings.Cut(repoDir, ",")
			baseBytes, _ := strconv.ParseInt(b, 10, 64)
			if n, err := dirSize(dir); err == nil {
				storedB = human(n-baseBytes) + " (repo growth)"
			}
		}
		rssText, rssMed, rssMax := rss(r.rssPath)
		fmt.Printf("| %s | %.2f | %.2f-%.2f | %d | %s | %s | %s | %s |\n", r.name, res.Median, res.Min, res.Max,
			len(res.Times), ratio, rssText, newB, storedB)
		out1.RSSMiB, out1.RSSMaxMiB, out1.New, out1.Stored = rssMed, rssMax, newB, storedB
		results = append(results, out1)
	}
	fmt.Println()
}

func rowsFirst(rows []row, section string) row {
	for _, r := range rows {
		if r.section == section {
			return r
		}
	}
	return row{}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

// Result is one row of results.json.
type Result struct {
	Section   string  `json:"section"`
	Name      string  `json:"name"`
	Reference bool    `json:"reference,omitempty"` // coffer's row: the others are compared with it
	Median    float64 `json:"median_s"`
	Min       float64 `json:"min_s"`
	Max       float64 `json:"max_s"`
	Runs      int     `json:"runs"`
	Ratio     float64 `json:"coffer_ratio,omitempty"` // coffer's median / this median
	RSSMiB    float64 `json:"peak_rss_mib,omitempty"` // median of the runs
	RSSMaxMiB float64 `json:"peak_rss_max_mib,omitempty"`
	New       string  `json:"new,omitempty"`
	Stored    string  `json:"stored,omitempty"`
}

// load reads the runs of name from every hyperfine export that pattern
// matches (one per round of an alternating run) and merges them.
func load(pattern, name string) (hfResult, error) {
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return hfResult{}, err
	}
	if len(paths) == 0 {
		return hfResult{}, fmt.Errorf("%s: no such file", pattern)
	}
	out := hfResult{Command: name}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return hfResult{}, err
		}
		var doc struct {
			Results []hfResult `json:"results"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return hfResult{}, fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range doc.Results {
			if r.Command == name {
				out.Times = append(out.Times, r.Times...)
			}
		}
	}
	if len(out.Times) == 0 {
		return hfResult{}, fmt.Errorf("%s: no result named %q", pattern, name)
	}
	t := append([]float64(nil), out.Times...)
	sort.Float64s(t)
	out.Min, out.Max = t[0], t[len(t)-1]
	if n := len(t); n%2 == 1 {
		out.Median = t[n/2]
	} else {
		out.Median = (t[n/2-1] + t[n/2]) / 2
	}
	return out, nil
}

// rss returns "median (max)" of the per-run peak RSS values in MiB, and
// both figures.
func rss(path string) (string, float64, float64) {
	if path == "-" || path == "" {
		return "n/a", 0, 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "n/a", 0, 0
	}
	var v []float64
	for _, l := range strings.Fields(string(b)) {
		if k, err := strconv.ParseFloat(l, 64); err == nil {
			v = append(v, k/1024)
		}
	}
	if len(v) == 0 {
		return "n/a", 0, 0
	}
	sort.Float64s(v)
	return fmt.Sprintf("%.0f (max %.0f)", v[len(v)/2], v[len(v)-1]), v[len(v)/2], v[len(v)-1]
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// outBytes reads new and stored bytes from the last run's output.
func outBytes(kind, path string) (string, string) {
	switch kind {
	case "coffer":
		b, err := os.ReadFile(path)
		if err != nil {
			return "?", "?"
		}
		// coffer --json writes one event per line; the backup's
		// figures are in the result of the "end" event.
		for _, l := range strings.Split(string(b), "\n") {
			var ev struct {
				Event  string `json:"event"`
				Result struct {
					Stats *struct {
						BytesNew    int64 `json:"bytes_new"`
						BytesStored int64 `json:"bytes_stored"`
					} `json:"stats"`
				} `json:"result"`
			}
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "end" && ev.Result.Stats != nil {
				return human(ev.Result.Stats.BytesNew), human(ev.Result.Stats.BytesStored)
			}
		}
		return "?", "?"
	case "restic":
		b, err := os.ReadFile(path)
		if err != nil {
			return "?", "?"
		}
		for _, l := range strings.Split(string(b), "\n") {
			var m struct {
				Type      string `json:"message_type"`
				Added     int64  `json:"data_added"`
				AddPacked *int64 `json:"data_added_packed"`
			}
			if json.Unmarshal([]byte(l), &m) == nil && m.Type == "summary" {
				stored := "n/a"
				if m.AddPacked != nil {
					stored = human(*m.AddPacked)
				}
				return human(m.Added), stored
			}
		}
		return "?", "?"
	case "file":
		fi, err := os.Stat(path)
		if err != nil {
			return "?", "?"
		}
		return "all", human(fi.Size())
	}
	return "", ""
}
