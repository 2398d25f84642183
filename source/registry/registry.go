// Package registry is the one list of source kinds. Command-line parsing
// (NAME=KIND:LOCATION), configuration checks, help text, backups, restores
// and drills all read it: adding a kind is one package under source/ and
// one line in the table below.
package registry

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cofferhq/coffer/source"
	"github.com/cofferhq/coffer/source/airflow"
	"github.com/cofferhq/coffer/source/bucket"
	"github.com/cofferhq/coffer/source/dir"
	"github.com/cofferhq/coffer/source/mysql"
	"github.com/cofferhq/coffer/source/postgres"
	"github.com/cofferhq/coffer/source/sqlite"
)

// kinds is the table, in the order help lists them.
var kinds = []*source.Kind{
	&dir.Kind,
	&postgres.Kind,
	&mysql.Kind,
	&sqlite.Kind,
	&bucket.Kind,
	&airflow.Kind,
}

// Kinds returns every kind, in a stable order.
func Kinds() []*source.Kind { return kinds }

// Names returns the kinds' names.
func Names() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	return names
}

// Lookup returns the kind called name.
func Lookup(name string) (*source.Kind, bool) {
	for _, k := range kinds {
		if k.Name == name {
			return k, true
		}
	}
	return nil, false
}

// UnknownKindError names a kind that is not in the registry.
type UnknownKindError struct{ Kind string }

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("unknown kind %q (kinds: %s)", e.Kind, strings.Join(Names(), ", "))
}

// ValidName reports whether name can name a source: it is not empty and
// has no '=', ':', '/' or spaces (it appears in NAME=KIND:LOCATION and in
// SNAPSHOT:SOURCE:/path).
func ValidName(name string) bool {
	return name != "" && !strings.ContainsAny(name, "=:/ ")
}

// Problem is one problem of a configured source: Field is "" for the
// source itself or the field at fault ("checks").
type Problem struct {
	Field, Msg string
}

// Check returns every problem of a configured source, in plain words. It
// connects to nothing.
func Check(spec source.Spec) []Problem {
	var probs []Problem
	k, ok := Lookup(spec.Kind)
	if !ok {
		probs = append(probs, Problem{"", (&UnknownKindError{spec.Kind}).Error()})
	}
	if spec.Location == "" {
		probs = append(probs, Problem{"", "no location"})
	}
	for _, ch := range spec.Checks {
		if ch.Name == "" || ch.Query == "" {
			probs = append(probs, Problem{"checks", "every check needs a name and a query"})
		}
	}
	if ok && len(spec.Checks) > 0 && !k.Checks {
		probs = append(probs, Problem{"checks", "checks apply to database sources only"})
	}
	if ok && spec.Globals && !k.Globals {
		probs = append(probs, Problem{"globals", "globals apply to postgres sources only"})
	}
	if spec.Airflow != (source.AirflowSpec{}) && spec.Kind != airflow.Kind.Name {
		probs = append(probs, Problem{"airflow", "airflow settings apply to airflow sources only"})
	}
	return probs
}

// New builds the source called name from spec.
func New(name string, spec source.Spec) (source.Source, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("source name %q: use letters, digits, '-' and '_'", name)
	}
	k, ok := Lookup(spec.Kind)
	if !ok {
		return nil, fmt.Errorf("source %s: %w", name, &UnknownKindError{spec.Kind})
	}
	return k.New(name, spec)
}

// BackupOrder sorts sources into the order a backup reads them: sources
// of a kind marked First (an Airflow deployment, whose metadata database
// is dumped before the stores its tasks write to) before the others,
// otherwise in the order given.
func BackupOrder(srcs []source.Source) {
	first := func(s source.Source) bool {
		k, ok := Lookup(s.Kind())
		return ok && k.First
	}
	sort.SliceStable(srcs, func(i, j int) bool { return first(srcs[i]) && !first(srcs[j]) })
}

// ParseSpec splits "KIND:LOCATION".
func ParseSpec(s string) (source.Spec, error) {
	kind, location, ok := strings.Cut(s, ":")
	if !ok || kind == "" || location == "" {
		return source.Spec{}, fmt.Errorf("source %q is not KIND:LOCATION (kinds: %s)", s, strings.Join(Names(), ", "))
	}
	return source.Spec{Kind: kind, Location: location}, nil
}

// Help describes every kind's LOCATION, one line each, for --help.
func Help() string {
	var b strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-9s %s\n", k.Name+":", k.Location)
	}
	return b.String()
}
