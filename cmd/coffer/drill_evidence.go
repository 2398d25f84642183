package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cofferhq/coffer/drill"
)

// writeDrillEvidence keeps a drill's evidence: for now DIR/drill-<id>.json
// (the whole report, mode 0600: it names tables and scratch resources)
// and DIR/drill-<id>.txt (a plain summary). Nothing is written when
// reportDir is empty.
func writeDrillEvidence(g *globals, r *drill.Report, reportDir string) error {
	if reportDir == "" {
		return nil
	}
	if err := os.MkdirAll(reportDir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	base := filepath.Join(reportDir, "drill-"+r.ID)
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o600); err != nil {
		return err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "drill %s\nsnapshot %s taken %s\nstarted %s on %s by %s (coffer %s)\nresult %s\nRTO %.1fs RPO %.0fs\n",
		r.ID, r.Snapshot, r.SnapshotTime.Format("2006-01-02T15:04:05Z07:00"), r.Started.Format("2006-01-02T15:04:05Z07:00"),
		r.Host, r.User, r.Coffer, r.Result, r.RTO.Duration().Seconds(), r.RPO.Duration().Seconds())
	srcs, checks := r.Failed()
	for i, c := range checks {
		name := srcs[i]
		if name == "" {
			name = "snapshot"
		}
		fmt.Fprintf(&s, "failed: %s %s: %s\n", name, c.Name, c.Detail)
	}
	if err := os.WriteFile(base+".txt", []byte(s.String()), 0o600); err != nil {
		return err
	}
	if !g.json {
		fmt.Fprintf(g.stdout, "evidence: %s.json, %s.txt\n", base, base)
	}
	return nil
}
