// Package retention decides which snapshots to keep (the policy), forgets
// the others with signed tombstones (Forget), and removes the data no
// snapshot needs any more (Prune). The daemon calls Forget and Prune after
// each successful backup; cmd/coffer's forget and prune commands are thin
// wrappers around them.
//
// The policy follows restic's "forget" semantics: snapshots are grouped,
// each group is walked from the newest snapshot to the oldest, and each
// keep-* rule keeps the first snapshot of every new bucket (hour, day, ISO
// week, month, year) until its count is used up; keep-last keeps the N
// newest; keep-within keeps every snapshot whose time lies within the
// duration of the group's newest snapshot.
package retention

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ErrNoPolicy is returned when a policy keeps nothing: forgetting with it
// would remove every snapshot, so it is refused.
var ErrNoPolicy = errors.New("no retention rule given: a policy must keep something")

// Policy says which snapshots to keep. A count of 0 turns a rule off; -1
// keeps every bucket (unlimited).
type Policy struct {
	Last    int
	Hourly  int
	Daily   int
	Weekly  int
	Monthly int
	Yearly  int
	// Within keeps every snapshot taken within this duration of the
	// newest snapshot of its group (not of now: a repository whose backups
	// stopped keeps its last ones).
	Within time.Duration
	// Location is the time zone in which hours, days, weeks, months and
	// years are counted; nil means UTC.
	Location *time.Location
}

// Empty reports whether p has no rule.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 && p.Within <= 0
}

// Validate refuses negative counts other than -1 and an empty policy.
func (p Policy) Validate() error {
	for _, r := range []struct {
		name string
		n    int
	}{{"last", p.Last}, {"hourly", p.Hourly}, {"daily", p.Daily}, {"weekly", p.Weekly}, {"monthly", p.Monthly}, {"yearly", p.Yearly}} {
		if r.n < -1 {
			return fmt.Errorf("keep %s: %d is not a count (use -1 for unlimited)", r.name, r.n)
		}
	}
	if p.Within < 0 {
		return fmt.Errorf("keep within: negative duration %s", p.Within)
	}
	if p.Empty() {
		return ErrNoPolicy
	}
	return nil
}

// String describes p the way the rules are named in reasons.
func (p Policy) String() string {
	var s []string
	add := func(name string, n int) {
		switch {
		case n == -1:
			s = append(s, name+" all")
		case n > 0:
			s = append(s, fmt.Sprintf("%s %d", name, n))
		}
	}
	add("last", p.Last)
	add("hourly", p.Hourly)
	add("daily", p.Daily)
	add("weekly", p.Weekly)
	add("monthly", p.Monthly)
	add("yearly", p.Yearly)
	if p.Within > 0 {
		s = append(s, "within "+FormatDuration(p.Within))
	}
	return strings.Join(s, ", ")
}

// Item is one snapshot the policy looks at.
type Item struct {
	ID   string
	Time time.Time
}

// Decision is the policy's verdict on one snapshot.
type Decision struct {
	ID   string
	Time time.Time
	Keep bool
	// Reasons name the rules that keep it: "last", "hourly", "daily",
	// "weekly", "monthly", "yearly", "within 7d".
	Reasons []string
}

// Apply applies p to one group of snapshots and returns a decision for
// each, newest first. Snapshots with equal times are ordered by id
// (descending), so the result does not depend on the input order.
func (p Policy) Apply(items []Item) []Decision {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	sorted := append([]Item(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if !sorted[i].Time.Equal(sorted[j].Time) {
			return sorted[i].Time.After(sorted[j].Time)
		}
		return sorted[i].ID > sorted[j].ID
	})
	type rule struct {
		name  string
		count int
		key   func(t time.Time) int
		last  int
		seen  bool
	}
	n := 0
	rules := []*rule{
		{name: "last", count: p.Last, key: func(time.Time) int { n++; return n }},
		{name: "hourly", count: p.Hourly, key: func(t time.Time) int {
			return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
		}},
		{name: "daily", count: p.Daily, key: func(t time.Time) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }},
		{name: "weekly", count: p.Weekly, key: func(t time.Time) int { y, w := t.ISOWeek(); return y*100 + w }},
		{name: "monthly", count: p.Monthly, key: func(t time.Time) int { return t.Year()*100 + int(t.Month()) }},
		{name: "yearly", count: p.Yearly, key: func(t time.Time) int { return t.Year() }},
	}
	out := make([]Decision, 0, len(sorted))
	var newest time.Time
	if len(sorted) > 0 {
		newest = sorted[0].Time
	}
	for _, it := range sorted {
		d := Decision{ID: it.ID, Time: it.Time}
		local := it.Time.In(loc)
		for _, r := range rules {
			if r.count == 0 {
				continue
			}
			k := r.key(local)
			if r.seen && k == r.last {
				continue
			}
			r.seen, r.last = true, k
			if r.count > 0 {
				r.count--
			}
			d.Reasons = append(d.Reasons, r.name)
		}
		if p.Within > 0 && !it.Time.Before(newest.Add(-p.Within)) {
			d.Reasons = append(d.Reasons, "within "+FormatDuration(p.Within))
		}
		d.Keep = len(d.Reasons) > 0
		out = append(out, d)
	}
	return out
}

// ParseDuration parses a keep-within duration: restic's form with years,
// months, days and hours ("7d", "6m", "2y5m7d3h"; a month is 30 days and a
// year 365), or else Go's ("36h", "90m0s", "1.5h"). restic's comes first:
// "6m" is six months, as in restic, not six minutes (which would forget
// almost everything).
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if strings.Trim(s, "0123456789ymdh") != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want e.g. 7d, 2y5m7d3h or 36h", s)
		}
		if d <= 0 {
			return 0, fmt.Errorf("duration %q: must be positive", s)
		}
		return d, nil
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return 0, fmt.Errorf("duration %q: want e.g. 7d, 2y5m7d3h or 36h", s)
		}
		var n int
		fmt.Sscanf(rest[:i], "%d", &n)
		unit := map[byte]time.Duration{'y': 365 * 24 * time.Hour, 'm': 30 * 24 * time.Hour, 'd': 24 * time.Hour, 'h': time.Hour}[rest[i]]
		if unit == 0 {
			return 0, fmt.Errorf("duration %q: unknown unit %q (y, m, d, h)", s, rest[i])
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q: must be positive", s)
	}
	return total, nil
}

// FormatDuration writes d in days and hours when it is a whole number of
// hours ("7d", "1d12h"), else in Go's form.
func FormatDuration(d time.Duration) string {
	if d%time.Hour != 0 || d <= 0 {
		return d.String()
	}
	h := int64(d / time.Hour)
	var s string
	if h >= 24 {
		s = fmt.Sprintf("%dd", h/24)
		h %= 24
	}
	if h > 0 {
		s += fmt.Sprintf("%dh", h)
	}
	return s
}
