package backup

import (
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/internal/config"
)

// NewSource builds the source of a configured kind.
func NewSource(name string, c config.Source) (Source, error) {
	if name == "" || strings.ContainsAny(name, "=:/ ") {
		return nil, fmt.Errorf("source name %q: use letters, digits, '-' and '_'", name)
	}
	switch c.Kind {
	case "dir":
		return &DirSource{SourceName: name, Path: c.Location, Exclude: c.Exclude}, nil
	case "postgres":
		return &PostgresSource{SourceName: name, DSN: c.Location, Checks: c.Checks, Globals: c.Globals}, nil
	case "mysql":
		return &MySQLSource{SourceName: name, DSN: c.Location, Checks: c.Checks}, nil
	case "sqlite":
		return &SQLiteSource{SourceName: name, Path: c.Location, Checks: c.Checks}, nil
	}
	return nil, fmt.Errorf("source %s: unknown kind %q (kinds: %s)", name, c.Kind, strings.Join(config.Kinds, ", "))
}
