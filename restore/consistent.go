package restore

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cofferhq/coffer/source"
)

// Point is the consistent point of one source of a snapshot, or of one
// part of a composite source ("deploy/metadb").
type Point struct {
	Name string `json:"name"`
	source.ConsistentPoint
}

// ConsistentPoints returns the consistent points the snapshot's sources
// recorded (metadata key source.ConsistentKey, and PART.consistent for the
// parts of a composite source), in catalog order.
func (s *Snapshot) ConsistentPoints() []Point {
	var out []Point
	for _, sc := range s.Catalog.Sources {
		var keys []string
		for k := range sc.Meta {
			if k == source.ConsistentKey || strings.HasSuffix(k, "."+source.ConsistentKey) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			var p source.ConsistentPoint
			if err := json.Unmarshal(sc.Meta[k], &p); err != nil || p.Time.IsZero() {
				continue
			}
			name := sc.Name
			if part := strings.TrimSuffix(k, "."+source.ConsistentKey); part != k {
				name += "/" + part
			}
			out = append(out, Point{Name: name, ConsistentPoint: p})
		}
	}
	return out
}

// Skew is the time between the earliest and the latest point taken in one
// instant (a database snapshot; a folder is read over a span and has End),
// and whether there were two such points.
func Skew(points []Point) (time.Duration, bool) {
	var lo, hi time.Time
	n := 0
	for _, p := range points {
		if p.End != nil {
			continue
		}
		if n == 0 || p.Time.Before(lo) {
			lo = p.Time
		}
		if n == 0 || p.Time.After(hi) {
			hi = p.Time
		}
		n++
	}
	return hi.Sub(lo), n >= 2
}

// DescribePoints says in one line when each database source's contents
// are from, relative to the first, and the skew between them; folders are
// left out.
func DescribePoints(points []Point) string {
	var first time.Time
	var parts []string
	for _, p := range points {
		if p.End != nil {
			continue
		}
		pos := ""
		switch {
		case p.LSN != "":
			pos = ", LSN " + p.LSN
		case p.Binlog != "":
			pos = ", binlog " + p.Binlog
		}
		if first.IsZero() {
			first = p.Time
			parts = append(parts, fmt.Sprintf("%s at %s%s", p.Name, p.Time.Local().Format("15:04:05.000"), pos))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %+.3fs%s", p.Name, p.Time.Sub(first).Seconds(), pos))
	}
	if len(parts) == 0 {
		return ""
	}
	s := strings.Join(parts, "; ")
	if skew, ok := Skew(points); ok {
		s += fmt.Sprintf("; skew %.3fs", skew.Seconds())
	}
	return s
}

// Snapshot returns the snapshot the source belongs to.
func (s *Source) Snapshot() *Snapshot { return s.s }
