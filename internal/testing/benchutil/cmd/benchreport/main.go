// Command benchreport turns the hyperfine JSON exports, peak-RSS files and
// command outputs that scripts/bench.sh and scripts/bench-postgres.sh
// collect into one Markdown summary.
//
//	benchreport -title T ROWS.tsv > results.md
//
// Each line of ROWS.tsv is: section, name (hyperfine -n), hyperfine JSON,
// RSS file (one peak RSS in KiB per run, from /usr/bin/time -f %M; "-" if
// none), output kind (coffer, restic, file, none) and output path. The first
// row of a section is coffer's reference; every other row gets the ratio
// coffer median / its median.
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
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: benchreport -title T ROWS.tsv")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 6 {
			continue
		}
		rows = append(rows, row{p[0], p[1], p[2], p[3], p[4], p[5]})
	}
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
		if r == rowsFirst(rows, section) {
			ratio = "1.00 (ref)"
		} else if res.Median > 0 {
			ratio = fmt.Sprintf("%.2f", ref/res.Median)
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
		fmt.Printf("| %s | %.2f | %.2f-%.2f | %d | %s | %s | %s | %s |\n", r.name, res.Median, res.Min, res.Max,
			len(res.Times), ratio, rss(r.rssPath), newB, storedB)
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

func load(path, name string) (hfResult, error) {
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
			return r, nil
		}
	}
	return hfResult{}, fmt.Errorf("%s: no result named %q", path, name)
}

// rss returns "median (max)" of the per-run peak RSS values in MiB.
func rss(path string) string {
	if path == "-" || path == "" {
		return "n/a"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "n/a"
	}
	var v []float64
	for _, l := range strings.Fields(string(b)) {
		if k, err := strconv.ParseFloat(l, 64); err == nil {
			v = append(v, k/1024)
		}
	}
	if len(v) == 0 {
		return "n/a"
	}
	sort.Float64s(v)
	return fmt.Sprintf("%.0f (max %.0f)", v[len(v)/2], v[len(v)-1])
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
		var doc struct {
			Stats struct {
				BytesNew    int64 `json:"bytes_new"`
				BytesStored int64 `json:"bytes_stored"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return "?", "?"
		}
		return human(doc.Stats.BytesNew), human(doc.Stats.BytesStored)
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
