package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDecodeIndexStream decodes an index pack by pack as json.Unmarshal
// would the whole (other keys ignored, null packs), and a document that
// breaks after its first pack fails after passing that pack, which
// LoadDedupFunc then reports as retracted.
func TestDecodeIndexStream(t *testing.T) {
	pack := `{"sha256":"aa","size":3,"chunks":[{"id":"` + strings.Repeat("01", 32) + `","o":1,"l":2,"r":3,"z":true}]}`
	for _, tc := range []struct {
		doc    string
		packs  int
		broken bool
	}{
		{`{"version":1,"packs":[` + pack + `,` + pack + `]}`, 2, false},
		{`{"extra":{"a":[1,2]},"Packs":[` + pack + `],"version":1}` + "\n", 1, false},
		{`{"version":1,"packs":null}`, 0, false},
		{`{"version":1,"packs":[` + pack + `,{"sha256":1}]}`, 1, true},
		{`{"version":1,"packs":[` + pack + `]`, 1, true},
		{`{"version":1,"packs":[` + pack + `]}{}`, 1, true},
	} {
		var whole Index
		unmarshalErr := json.Unmarshal([]byte(tc.doc), &whole)
		var got []IndexPack
		err := decodeIndexStream(json.NewDecoder(strings.NewReader(tc.doc)), func(ip *IndexPack) error {
			got = append(got, *ip)
			return nil
		})
		if (err != nil) != tc.broken || (unmarshalErr != nil) != tc.broken {
			t.Fatalf("%s: stream error %v, json.Unmarshal error %v; want broken %v", tc.doc, err, unmarshalErr, tc.broken)
		}
		if len(got) != tc.packs {
			t.Fatalf("%s: %d packs passed, want %d", tc.doc, len(got), tc.packs)
		}
		if !tc.broken && (len(whole.Packs) != len(got) || (len(got) > 0 && got[0].Chunks[0] != whole.Packs[0].Chunks[0])) {
			t.Fatalf("%s: stream %+v, json.Unmarshal %+v", tc.doc, got, whole.Packs)
		}
	}
	// A pack of many chunks comes in batches, each with its pack's name
	// and size; chunks listed before them wait for the pack's end.
	var many []string
	for i := range indexBatch + 10 {
		many = append(many, fmt.Sprintf(`{"id":"%064x","o":%d,"l":1,"r":1}`, i, i))
	}
	for _, doc := range []string{
		`{"packs":[{"sha256":"bb","size":9,"chunks":[` + strings.Join(many, ",") + `],"mtime":"2026-01-02T03:04:05Z"}]}`,
		`{"packs":[{"chunks":[` + strings.Join(many, ",") + `],"sha256":"bb","size":9,"mtime":"2026-01-02T03:04:05Z"}]}`,
	} {
		var calls, chunks int
		var last IndexPack
		err := decodeIndexStream(json.NewDecoder(strings.NewReader(doc)), func(ip *IndexPack) error {
			if ip.SHA256 != "bb" || ip.Size != 9 {
				t.Fatalf("a batch of pack %q, size %d", ip.SHA256, ip.Size)
			}
			for i, c := range ip.Chunks {
				if c.Offset != int64(chunks+i) {
					t.Fatalf("chunk %d has offset %d", chunks+i, c.Offset)
				}
			}
			calls++
			chunks += len(ip.Chunks)
			last = *ip
			return nil
		})
		if err != nil || chunks != indexBatch+10 || last.ModTime.IsZero() {
			t.Fatalf("%d chunks in %d calls, last mtime %v, err %v", chunks, calls, last.ModTime, err)
		}
		if strings.HasPrefix(doc, `{"packs":[{"sha256"`) != (calls == 2) {
			t.Fatalf("%d calls for %.40s", calls, doc)
		}
	}
	stop := errors.New("stop")
	err := decodeIndexStream(json.NewDecoder(strings.NewReader(`{"packs":[`+pack+`]}`)), func(*IndexPack) error { return stop })
	if !errors.Is(err, stop) || isDecodeError(err) {
		t.Fatalf("an error of the function came back as %v", err)
	}
}
