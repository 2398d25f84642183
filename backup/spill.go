package backup

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"fmt"
	"io"
	"os"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// A spill holds the catalog records of the files a backup has finished,
// in the order they were written, until the catalog is encoded at the end
// (a chunk's pack is named only once the pack is stored, so the catalog
// cannot be written as the files are read). Holding them in memory cost
// about 2.5 KiB a file, 2.5 GB for a million files; the spill keeps memory
// flat in the number of files.
//
// The records name files and their hashes, so they never touch the disk
// in plaintext: they are age-encrypted to an ephemeral key that only this
// process holds, into a temporary file that is unlinked as soon as it is
// created (nothing is left behind by a crash). Where no temporary file can
// be made, the spill stays in memory, encrypted all the same.
type spill struct {
	f       *os.File      // unlinked; nil when in memory
	mem     *bytes.Buffer // when f is nil
	id      *age.X25519Identity
	bw      *bufio.Writer
	aw      io.WriteCloser
	enc     *gob.Encoder
	slots   []*packSlot // by number
	slotNum map[*packSlot]int
	n       int
	sealed  bool
}

// spillRec is one entry: the catalog entry without its chunks, where its
// chunks are (packs by number, see spill.slots), and the file's state for
// the change cache when the source reported one, with the metadata the
// source stored with it (see source.ObjectTracker).
type spillRec struct {
	Entry repo.Entry
	Locs  []spillLoc
	State *source.FileState
	Meta  []byte
}

type spillLoc struct {
	ID     repo.ChunkID
	Slot   int
	Offset int64
	Length int64
	Raw    int64
	Zstd   bool
}

func newSpill() (*spill, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("spill key: %w", err)
	}
	s := &spill{id: id, slotNum: map[*packSlot]int{}}
	var w io.Writer
	if f, err := os.CreateTemp("", "coffer-spill-*"); err == nil {
		os.Remove(f.Name())
		s.f, w = f, f
	} else {
		s.mem = &bytes.Buffer{}
		w = s.mem
	}
	s.bw = bufio.NewWriterSize(w, 256<<10)
	if s.aw, err = age.Encrypt(s.bw, id.Recipient()); err != nil {
		s.close()
		return nil, fmt.Errorf("spill: %w", err)
	}
	s.enc = gob.NewEncoder(s.aw)
	return s, nil
}

// add appends the record of a finished file.
func (s *spill) add(rec *fileRec) error {
	if s.sealed {
		return fmt.Errorf("spill: add after read")
	}
	r := spillRec{Entry: rec.entry, State: rec.state, Meta: rec.meta, Locs: make([]spillLoc, len(rec.locs))}
	for i, l := range rec.locs {
		n, ok := s.slotNum[l.loc.pack]
		if !ok {
			n = len(s.slots)
			s.slots = append(s.slots, l.loc.pack)
			s.slotNum[l.loc.pack] = n
		}
		r.Locs[i] = spillLoc{ID: l.id, Slot: n, Offset: l.loc.offset, Length: l.loc.length, Raw: l.loc.raw, Zstd: l.loc.zstd}
	}
	if err := s.enc.Encode(&r); err != nil {
		return tempFileError("temporary catalog records", err)
	}
	s.n++
	return nil
}

// records returns a reader of every record from the first; it may be
// called more than once, but add may not be called after it.
func (s *spill) records() (func() (spillRec, error), error) {
	if !s.sealed {
		s.sealed = true
		if err := s.aw.Close(); err != nil {
			return nil, tempFileError("temporary catalog records", err)
		}
		if err := s.bw.Flush(); err != nil {
			return nil, tempFileError("temporary catalog records", err)
		}
	}
	var r io.Reader
	if s.f != nil {
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("spill: %w", err)
		}
		r = bufio.NewReaderSize(s.f, 256<<10)
	} else {
		r = bytes.NewReader(s.mem.Bytes())
	}
	ar, err := age.Decrypt(r, s.id)
	if err != nil {
		return nil, fmt.Errorf("spill: %w", err)
	}
	dec := gob.NewDecoder(ar)
	return func() (spillRec, error) {
		var rec spillRec
		if err := dec.Decode(&rec); err != nil {
			return rec, fmt.Errorf("spill: %w", err)
		}
		return rec, nil
	}, nil
}

// refs resolves a record's chunk locations; every pack is stored by now.
func (s *spill) pack(l spillLoc) *packSlot { return s.slots[l.Slot] }

func (s *spill) close() {
	if s == nil {
		return
	}
	if s.f != nil {
		s.f.Close()
	}
	s.mem = nil
}
