package airflowfixture

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// rows are the values of one table's rows, in the order of cols.
type rows struct {
	table string
	cols  []string
	vals  [][]any
}

func (r *rows) add(v ...any) {
	if len(v) != len(r.cols) {
		panic(fmt.Sprintf("%s: %d values for %d columns", r.table, len(v), len(r.cols)))
	}
	r.vals = append(r.vals, v)
}

// literal renders a value as an SQL literal of the engine: nil, string,
// []byte, bool, int, int64, float64, time.Time.
func literal(engine string, v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		s := strings.ReplaceAll(v, "'", "''")
		if engine == "mysql" {
			s = strings.ReplaceAll(s, `\`, `\\`)
		}
		return "'" + s + "'"
	case []byte:
		if engine == "postgres" {
			return `'\x` + hex.EncodeToString(v) + "'::bytea"
		}
		if len(v) == 0 {
			return "''"
		}
		return "X'" + hex.EncodeToString(v) + "'"
	case bool:
		if engine == "postgres" {
			return strconv.FormatBool(v)
		}
		if v {
			return "1"
		}
		return "0"
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case time.Time:
		s := v.UTC().Format("2006-01-02 15:04:05.000000")
		if engine == "postgres" {
			s += "+00"
		}
		return "'" + s + "'"
	}
	panic(fmt.Sprintf("literal of %T", v))
}

// inserts renders rows as multi-row INSERT statements.
func inserts(engine string, rs []*rows) []string {
	var out []string
	for _, r := range rs {
		var cols []string
		for _, c := range r.cols {
			cols = append(cols, quote(engine, c))
		}
		head := "insert into " + quote(engine, r.table) + " (" + strings.Join(cols, ", ") + ") values\n"
		for start := 0; start < len(r.vals); start += 200 {
			end := min(start+200, len(r.vals))
			var b strings.Builder
			b.WriteString(head)
			for i, row := range r.vals[start:end] {
				if i > 0 {
					b.WriteString(",\n")
				}
				b.WriteString("(")
				for j, v := range row {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteString(literal(engine, v))
				}
				b.WriteString(")")
			}
			out = append(out, b.String())
		}
	}
	return out
}
