package repo

import (
	"encoding/json"
	"errors"
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
	stop := errors.New("stop")
	err := decodeIndexStream(json.NewDecoder(strings.NewReader(`{"packs":[`+pack+`]}`)), func(*IndexPack) error { return stop })
	if !errors.Is(err, stop) || isDecodeError(err) {
		t.Fatalf("an error of the function came back as %v", err)
	}
}
