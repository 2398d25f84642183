package backup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

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
	buf     []byte      // the record being encoded
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
	if len(r.Entry.Chunks) != 0 {
		return fmt.Errorf("spill: %q: a spilled entry has its chunks as locations only", r.Entry.Path)
	}
	if err := s.encode(&r); err != nil {
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
	br := bufio.NewReaderSize(ar, 64<<10)
	var buf []byte
	return func() (spillRec, error) {
		var rec spillRec
		n, err := binary.ReadUvarint(br)
		if err == nil {
			if uint64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			buf = buf[:n]
			_, err = io.ReadFull(br, buf)
		}
		if err == nil {
			err = decodeSpillRec(buf, &rec)
		}
		if err != nil {
			return rec, fmt.Errorf("spill: %w", err)
		}
		return rec, nil
	}, nil
}

// The spill's records are encoded by hand rather than with gob, whose
// reflection cost about a fifth of an unchanged backup's CPU: each record
// is its length (uvarint) and then its fields in order, integers as
// varints, strings and byte slices length-prefixed. TestSpillRecordFields
// fails when a field is added to a spilled type and not here.

// encode appends one record to the stream.
func (s *spill) encode(r *spillRec) error {
	b := s.buf[:0]
	e := &r.Entry
	for _, str := range []string{e.Path, e.Type, e.User, e.Group, e.Link, e.SHA256} {
		b = appendString(b, str)
	}
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendVarint(b, e.ModTime.Unix())
	b = binary.AppendUvarint(b, uint64(e.ModTime.Nanosecond()))
	b = binary.AppendVarint(b, int64(e.UID))
	b = binary.AppendVarint(b, int64(e.GID))
	b = binary.AppendVarint(b, e.Size)
	if len(e.Chunks) != 0 {
		return errors.New("a spilled entry has its chunks as locations only")
	}
	b = binary.AppendUvarint(b, uint64(len(r.Locs)))
	for _, l := range r.Locs {
		b = append(b, l.ID[:]...)
		b = binary.AppendVarint(b, int64(l.Slot))
		b = binary.AppendVarint(b, l.Offset)
		b = binary.AppendVarint(b, l.Length)
		b = binary.AppendVarint(b, l.Raw)
		b = appendBool(b, l.Zstd)
	}
	b = appendBool(b, r.State != nil)
	if r.State != nil {
		b = appendFileState(b, r.State)
	}
	b = appendBool(b, r.Meta != nil)
	b = appendString(b, string(r.Meta))
	var head [binary.MaxVarintLen64]byte
	_, err := s.aw.Write(binary.AppendUvarint(head[:0], uint64(len(b))))
	if err == nil {
		_, err = s.aw.Write(b)
	}
	s.buf = b
	return err
}

func appendFileState(b []byte, st *source.FileState) []byte {
	b = binary.AppendVarint(b, st.Size)
	b = binary.AppendVarint(b, st.MTime)
	b = binary.AppendVarint(b, st.CTime)
	b = binary.AppendUvarint(b, st.Ino)
	b = binary.AppendUvarint(b, st.Dev)
	return appendString(b, st.ETag)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// spillDecoder reads the fields of one record; the first error sticks.
type spillDecoder struct {
	b   []byte
	err error
}

var errSpillShort = errors.New("record cut short")

func (d *spillDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errSpillShort, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *spillDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = errSpillShort, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *spillDecoder) bytes(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.err, d.b = errSpillShort, nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *spillDecoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *spillDecoder) flag() bool {
	v := d.bytes(1)
	return len(v) == 1 && v[0] == 1
}

func decodeSpillRec(b []byte, r *spillRec) error {
	d := &spillDecoder{b: b}
	e := &r.Entry
	for _, p := range []*string{&e.Path, &e.Type, &e.User, &e.Group, &e.Link, &e.SHA256} {
		*p = d.string()
	}
	e.Mode = fs.FileMode(d.uvarint())
	sec := d.varint()
	e.ModTime = time.Unix(sec, int64(d.uvarint())).UTC()
	e.UID, e.GID, e.Size = int(d.varint()), int(d.varint()), d.varint()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errSpillShort
	}
	r.Locs = make([]spillLoc, n)
	for i := range r.Locs {
		l := &r.Locs[i]
		copy(l.ID[:], d.bytes(uint64(len(l.ID))))
		l.Slot = int(d.varint())
		l.Offset, l.Length, l.Raw = d.varint(), d.varint(), d.varint()
		l.Zstd = d.flag()
	}
	if d.flag() {
		st := d.fileState()
		r.State = &st
	}
	r.Meta = d.meta()
	return d.end()
}

func (d *spillDecoder) fileState() source.FileState {
	return source.FileState{Size: d.varint(), MTime: d.varint(), CTime: d.varint(), Ino: d.uvarint(), Dev: d.uvarint(), ETag: d.string()}
}

// meta reads a flag (present) and bytes: nil when absent.
func (d *spillDecoder) meta() []byte {
	present := d.flag()
	b := d.bytes(d.uvarint())
	if !present {
		return nil
	}
	return append([]byte{}, b...)
}

// end checks that the record was read whole.
func (d *spillDecoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("record too long")
	}
	return d.err
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
