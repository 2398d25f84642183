package repo

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"unicode/utf8"
)

// appendEntryJSON appends w as encoding/json's Marshal writes it, byte for
// byte (TestCatalogJSON, FuzzCatalogJSON): the fields in order, those
// tagged omitempty left out when empty, strings escaped as Marshal escapes
// them (<, > and & too, U+2028 and U+2029, U+FFFD for bytes that are not
// UTF-8), []byte in standard base64, the time as time.Time's MarshalJSON (AppendText, quoted).
// A backup writes one entry a file, and reflection was most of the cost of
// writing a catalog (doc/performance.md).
func appendEntryJSON(b []byte, w *entryJSON) ([]byte, error) {
	b = append(b, '{')
	if w.Path != "" {
		b = append(b, `"path":`...)
		b = appendJSONString(b, w.Path)
		b = append(b, ',')
	}
	if len(w.PathB64) > 0 {
		b = append(b, `"path_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, w.PathB64)
		b = append(b, `",`...)
	}
	b = append(b, `"type":`...)
	b = appendJSONString(b, w.Type)
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(w.Mode), 10)
	b = append(b, `,"mtime":`...)
	b = append(b, '"')
	b, err := w.ModTime.AppendText(b)
	if err != nil {
		return b, err
	}
	b = append(b, '"')
	if w.UID != 0 {
		b = append(b, `,"uid":`...)
		b = strconv.AppendInt(b, int64(w.UID), 10)
	}
	if w.GID != 0 {
		b = append(b, `,"gid":`...)
		b = strconv.AppendInt(b, int64(w.GID), 10)
	}
	if w.User != "" {
		b = append(b, `,"user":`...)
		b = appendJSONString(b, w.User)
	}
	if w.Group != "" {
		b = append(b, `,"group":`...)
		b = appendJSONString(b, w.Group)
	}
	if w.Size != 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, w.Size, 10)
	}
	if w.Link != "" {
		b = append(b, `,"link":`...)
		b = appendJSONString(b, w.Link)
	}
	if len(w.LinkB64) > 0 {
		b = append(b, `,"link_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, w.LinkB64)
		b = append(b, '"')
	}
	if w.SHA256 != "" {
		b = append(b, `,"sha256":`...)
		b = appendJSONString(b, w.SHA256)
	}
	if len(w.Chunks) > 0 {
		b = append(b, `,"chunks":[`...)
		for i := range w.Chunks {
			c := &w.Chunks[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":"`...)
			b = hex.AppendEncode(b, c.ID[:])
			b = append(b, `","p":`...)
			b = appendJSONString(b, c.Pack)
			b = append(b, `,"o":`...)
			b = strconv.AppendInt(b, c.Offset, 10)
			b = append(b, `,"l":`...)
			b = strconv.AppendInt(b, c.Length, 10)
			b = append(b, `,"r":`...)
			b = strconv.AppendInt(b, c.Raw, 10)
			if c.Zstd {
				b = append(b, `,"z":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes encoding/json writes as they are (with
// HTML escaping, as Marshal does): not a control byte, quote, backslash,
// <, > or &.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string, as encoding/json's Marshal
// writes it.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
