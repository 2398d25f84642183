package retention

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s: %v (install tzdata)", name, err)
	}
	return loc
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// golden renders decisions one per line: "id keep reason,reason" or
// "id forget".
func golden(ds []Decision) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.ID)
		if d.Keep {
			b.WriteString(" keep " + strings.Join(d.Reasons, ","))
		} else {
			b.WriteString(" forget")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPolicyGolden applies policies to fixed snapshot sets, in UTC and in
// time zones across their DST changes, and compares every decision and
// its reasons with the expected text. The expected texts were worked out
// by hand from restic's rules (see the package doc).
func TestPolicyGolden(t *testing.T) {
	type snap struct{ id, time string }
	cases := []struct {
		name   string
		tz     string
		policy Policy
		snaps  []snap
		want   string
	}{
		{
			name:   "last and daily",
			policy: Policy{Last: 2, Daily: 3},
			snaps: []snap{{"s01", "2026-01-01T12:00:00Z"}, {"s02", "2026-01-02T12:00:00Z"}, {"s03", "2026-01-03T12:00:00Z"},
				{"s04", "2026-01-04T12:00:00Z"}, {"s05", "2026-01-05T12:00:00Z"}, {"s06", "2026-01-06T12:00:00Z"},
				{"s07", "2026-01-07T12:00:00Z"}, {"s08", "2026-01-08T12:00:00Z"}, {"s09", "2026-01-09T12:00:00Z"},
				{"s10", "2026-01-10T12:00:00Z"}, {"s11", "2026-01-10T18:00:00Z"}},
			want: "s11 keep last,daily\ns10 keep last\ns09 keep daily\ns08 keep daily\ns07 forget\ns06 forget\ns05 forget\n" +
				"s04 forget\ns03 forget\ns02 forget\ns01 forget\n",
		},
		{
			// ISO weeks cross the new year: 2025-12-29 and 2025-12-31 are
			// in week 1 of 2026, but in month 12 and year 2025.
			name:   "weekly monthly yearly across the new year",
			policy: Policy{Weekly: 2, Monthly: 2, Yearly: 2},
			snaps: []snap{{"b", "2025-12-29T10:00:00Z"}, {"c", "2025-12-31T10:00:00Z"}, {"d", "2026-01-04T10:00:00Z"},
				{"e", "2026-01-05T10:00:00Z"}, {"f", "2026-02-01T10:00:00Z"}},
			want: "f keep weekly,monthly,yearly\ne keep weekly,monthly\nd forget\nc keep yearly\nb forget\n",
		},
		{
			// Berlin springs forward on 2026-03-29 at 01:00 UTC (02:00 CET
			// becomes 03:00 CEST). b is 00:30 on the 29th in Berlin but
			// still the 28th in UTC.
			name:   "Europe/Berlin spring forward, daily",
			tz:     "Europe/Berlin",
			policy: Policy{Daily: -1},
			snaps: []snap{{"a", "2026-03-28T22:30:00Z"}, {"b", "2026-03-28T23:30:00Z"}, {"c", "2026-03-29T00:59:00Z"},
				{"d", "2026-03-29T01:00:00Z"}, {"e", "2026-03-29T22:30:00Z"}},
			want: "e keep daily\nd keep daily\nc forget\nb forget\na keep daily\n",
		},
		{
			name:   "same snapshots in UTC, daily",
			policy: Policy{Daily: -1},
			snaps: []snap{{"a", "2026-03-28T22:30:00Z"}, {"b", "2026-03-28T23:30:00Z"}, {"c", "2026-03-29T00:59:00Z"},
				{"d", "2026-03-29T01:00:00Z"}, {"e", "2026-03-29T22:30:00Z"}},
			want: "e keep daily\nd forget\nc forget\nb keep daily\na forget\n",
		},
		{
			// Berlin falls back on 2026-10-25 at 01:00 UTC (03:00 CEST
			// becomes 02:00 CET): the local hour 02 happens twice.
			name:   "Europe/Berlin fall back, hourly",
			tz:     "Europe/Berlin",
			policy: Policy{Hourly: -1},
			snaps: []snap{{"a", "2026-10-25T00:15:00Z"}, {"b", "2026-10-25T00:45:00Z"}, {"c", "2026-10-25T01:15:00Z"},
				{"d", "2026-10-25T02:15:00Z"}},
			want: "d keep hourly\nc keep hourly\nb forget\na forget\n",
		},
		{
			// New York falls back on 2026-11-01 at 06:00 UTC (02:00 EDT
			// becomes 01:00 EST): 05:10Z, 05:50Z and 06:10Z are all in
			// the local hour 01.
			name:   "America/New_York fall back, hourly",
			tz:     "America/New_York",
			policy: Policy{Hourly: -1},
			snaps: []snap{{"a", "2026-11-01T05:10:00Z"}, {"b", "2026-11-01T05:50:00Z"}, {"c", "2026-11-01T06:10:00Z"},
				{"d", "2026-11-01T07:10:00Z"}},
			want: "d keep hourly\nc keep hourly\nb forget\na forget\n",
		},
		{
			name:   "same snapshots in UTC, hourly",
			policy: Policy{Hourly: -1},
			snaps: []snap{{"a", "2026-11-01T05:10:00Z"}, {"b", "2026-11-01T05:50:00Z"}, {"c", "2026-11-01T06:10:00Z"},
				{"d", "2026-11-01T07:10:00Z"}},
			want: "d keep hourly\nc keep hourly\nb keep hourly\na forget\n",
		},
		{
			// New York springs forward on 2026-03-08 at 07:00 UTC; the
			// local day of 2026-03-08 is 23 hours long. keep-within counts
			// from the newest snapshot (e), in absolute time.
			name:   "America/New_York spring forward, daily and within",
			tz:     "America/New_York",
			policy: Policy{Daily: 2, Within: 3 * time.Hour},
			snaps: []snap{{"a", "2026-03-08T04:30:00Z"}, {"b", "2026-03-08T06:30:00Z"}, {"c", "2026-03-08T07:30:00Z"},
				{"d", "2026-03-09T03:59:00Z"}, {"e", "2026-03-09T04:00:00Z"}},
			want: "e keep daily,within 3h\nd keep daily,within 3h\nc forget\nb forget\na forget\n",
		},
		{
			// Equal times: ordered by id, descending; the first of them
			// takes the bucket.
			name:   "equal times",
			policy: Policy{Last: 1, Hourly: 2},
			snaps: []snap{{"aa", "2026-05-01T10:00:00Z"}, {"cc", "2026-05-01T10:00:00Z"}, {"old", "2026-05-01T09:00:00Z"},
				{"bb", "2026-05-01T10:00:00Z"}},
			want: "cc keep last,hourly\nbb forget\naa forget\nold keep hourly\n",
		},
		{
			// keep-within is measured from the newest snapshot, not from
			// now: a repository whose backups stopped keeps its last ones.
			name:   "within, old repository",
			policy: Policy{Within: 48 * time.Hour},
			snaps: []snap{{"a", "2020-01-01T00:00:00Z"}, {"b", "2020-01-08T00:00:00Z"}, {"c", "2020-01-09T00:00:00Z"},
				{"d", "2020-01-10T00:00:00Z"}},
			want: "d keep within 2d\nc keep within 2d\nb keep within 2d\na forget\n",
		},
		{
			name:   "monthly in Berlin at the month's edge",
			tz:     "Europe/Berlin",
			policy: Policy{Monthly: 2},
			// 2026-01-31T23:30Z is already February in Berlin.
			snaps: []snap{{"jan", "2026-01-31T22:30:00Z"}, {"feb1", "2026-01-31T23:30:00Z"}, {"feb2", "2026-02-15T12:00:00Z"}},
			want:  "feb2 keep monthly\nfeb1 forget\njan keep monthly\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.policy
			if c.tz != "" {
				p.Location = mustLoc(t, c.tz)
			}
			var items []Item
			for _, s := range c.snaps {
				items = append(items, Item{ID: s.id, Time: at(t, s.time)})
			}
			got := golden(p.Apply(items))
			if got != c.want {
				t.Fatalf("decisions:\n%s\nwant:\n%s", got, c.want)
			}
			// The input order does not matter.
			for range 5 {
				shuffled := slices.Clone(items)
				rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if g := golden(p.Apply(shuffled)); g != got {
					t.Fatalf("decisions depend on input order:\n%s\nvs\n%s", g, got)
				}
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (Policy{}).Validate(); err != ErrNoPolicy {
		t.Fatalf("empty policy: %v, want ErrNoPolicy", err)
	}
	if err := (Policy{Daily: -2}).Validate(); err == nil || !strings.Contains(err.Error(), "daily") {
		t.Fatalf("daily -2: %v", err)
	}
	if err := (Policy{Within: -time.Hour}).Validate(); err == nil {
		t.Fatal("negative within accepted")
	}
	if err := (Policy{Last: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "90m0s": 90 * time.Minute,
		"2y5m7d3h": (2*365+5*30+7)*24*time.Hour + 3*time.Hour, "1y": 365 * 24 * time.Hour,
		// restic's month, not Go's minute: keeping 6 minutes would forget
		// almost everything.
		"6m": 6 * 30 * 24 * time.Hour, "1.5h": 90 * time.Minute, "1h30m0s": 90 * time.Minute,
	}
	for s, want := range good {
		got, err := ParseDuration(s)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "7w", "-1h", "d", "0d", "0s", "1.5d", "12"} {
		if d, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", s, d)
		}
	}
	if s := FormatDuration(36 * time.Hour); s != "1d12h" {
		t.Errorf("FormatDuration(36h) = %q", s)
	}
}
