package drill

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/units"
)

// WriteSummary writes the terminal summary of a drill: the result, RTO,
// RPO and bytes read, then every check, source by source, with the split of
// each source's time.
func (r *Report) WriteSummary(w io.Writer) {
	result := strings.ToUpper(string(r.Result))
	fmt.Fprintf(w, "drill %s of snapshot %s (%s", r.ID, repo.ShortID(r.Snapshot), r.SnapshotTime.Local().Format("2006-01-02 15:04:05"))
	if r.SnapshotHost != "" {
		fmt.Fprintf(w, ", host %s", r.SnapshotHost)
	}
	fmt.Fprintf(w, "): %s\n", result)
	fmt.Fprintf(w, "  RTO %s, RPO %s, read %s (%s/s)\n", round(r.RTO.Duration()), round(r.RPO.Duration()),
		units.Bytes(r.BytesRead), units.Bytes(int64(r.Throughput)))
	for _, c := range r.Checks {
		printCheck(w, "  ", c)
	}
	for _, s := range r.Sources {
		t := s.Timings
		fmt.Fprintf(w, "  %s (%s): %s in %s: fetch %s, decrypt %s, restore %s, check %s\n", s.Name, s.Kind, strings.ToUpper(string(s.Result)),
			round(t.Total.Duration()), round(t.Fetch.Duration()), round(t.Decrypt.Duration()), round(t.Restore.Duration()), round(t.Check.Duration()))
		for _, c := range s.Checks {
			printCheck(w, "    ", c)
		}
	}
	if srcs, checks := r.Failed(); len(checks) > 0 {
		var names []string
		for i, c := range checks {
			if srcs[i] != "" {
				names = append(names, srcs[i]+" "+c.Name)
			} else {
				names = append(names, c.Name)
			}
		}
		fmt.Fprintf(w, "  failed: %s\n", strings.Join(names, ", "))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}

func printCheck(w io.Writer, indent string, c Check) {
	fmt.Fprintf(w, "%s%-4s %-13s %s\n", indent, c.Result, c.Name, c.Detail)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
