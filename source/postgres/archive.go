package postgres

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The custom format of pg_dump (-Fc) starts with a header and a table of
// contents (TOC: one entry per object, with its SQL), followed by the data
// blocks of the entries that have data. A parallel restore of the post-data
// section (indexes, constraints, triggers) needs only the header and the
// TOC, so Restore streams the dump once and keeps just those bytes: the
// reader below finds where they end. It follows pg_backup_archiver.c
// (ReadHead, ReadToc) and pg_backup_custom.c (_ReadExtraToc) of PostgreSQL
// 9.0 to 17, archive versions 1.12 to 1.16.

// errArchiveUnsupported says that the archive is not one pgArchiveTOCLength
// can read: another format, or an archive version it does not know.
var errArchiveUnsupported = errors.New("not a custom-format archive of a known version")

// Archive versions (pg_backup_archiver.h).
const (
	pgArchV1_12 = 1<<16 | 12<<8 // first supported: separate BLOB entries (9.0)
	pgArchV1_14 = 1<<16 | 14<<8 // table access method (12)
	pgArchV1_15 = 1<<16 | 15<<8 // compression algorithm in the header (16)
	pgArchV1_16 = 1<<16 | 16<<8 // relkind in the TOC (17); last known
)

// pgArchiveCustom is the format byte of a custom-format archive (archCustom).
const pgArchiveCustom = 1

// pgArchiveTOCLength reads the header and table of contents of a
// custom-format archive from r and returns their length in bytes: the
// offset of the first data block. It reads no further than that (plus what
// its buffer holds). An archive it cannot read gives errArchiveUnsupported;
// one that ends inside the TOC, io.ErrUnexpectedEOF; a read error of r is
// returned as it is.
func pgArchiveTOCLength(r io.Reader) (int64, error) {
	toc, err := pgArchiveReadTOC(r, false)
	if err != nil {
		return 0, err
	}
	return toc.Length, nil
}

// pgTOC is what coffer reads of an archive's header and table of contents.
type pgTOC struct {
	Length  int64 // of the header and the TOC: where the data blocks start
	IntSize int   // bytes of an integer's value (after its sign byte)
	Entries []pgTOCEntry
}

// pgTOCEntry is one entry of the table of contents.
type pgTOCEntry struct {
	ID      int64
	Desc    string // "TABLE DATA", "SEQUENCE SET", "BLOBS", ...
	Section int    // pgSection...
	// Data says that the entry has a data block (its offset flag is not
	// K_OFFSET_NO_DATA).
	Data bool
	// Deps are the dump ids of the entries it depends on.
	Deps []int64
}

// Sections of a TOC entry (pg_backup.h, teSection).
const (
	pgSectionNone     = 1
	pgSectionPreData  = 2
	pgSectionData     = 3
	pgSectionPostData = 4
)

// pgArchiveReadTOC reads the header and table of contents as
// pgArchiveTOCLength does, and with entries set, what coffer needs of
// each entry.
func pgArchiveReadTOC(r io.Reader, entries bool) (*pgTOC, error) {
	a := &archiveReader{r: bufio.NewReader(r)}
	if err := a.header(); err != nil {
		return nil, err
	}
	n, err := a.int()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: negative TOC count", errArchiveUnsupported)
	}
	toc := &pgTOC{IntSize: a.intSize}
	for i := int64(0); i < n; i++ {
		e, err := a.entry(entries)
		if err != nil {
			return nil, err
		}
		if entries {
			toc.Entries = append(toc.Entries, e)
		}
	}
	toc.Length = a.n
	return toc, nil
}

type archiveReader struct {
	r       *bufio.Reader
	n       int64 // bytes consumed
	version int
	intSize int
	offSize int
}

func (a *archiveReader) fail(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (a *archiveReader) byte() (byte, error) {
	b, err := a.r.ReadByte()
	if err != nil {
		return 0, a.fail(err)
	}
	a.n++
	return b, nil
}

func (a *archiveReader) skip(n int64) error {
	for n > 0 {
		step := n
		if step > 1<<20 {
			step = 1 << 20
		}
		m, err := a.r.Discard(int(step))
		a.n += int64(m)
		if err != nil {
			return a.fail(err)
		}
		n -= step
	}
	return nil
}

// int reads ReadInt's encoding: a sign byte, then intSize bytes, least
// significant first.
func (a *archiveReader) int() (int64, error) {
	sign, err := a.byte()
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := 0; i < a.intSize; i++ {
		b, err := a.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b) << (8 * i)
	}
	if v > 1<<62 {
		return 0, fmt.Errorf("%w: integer out of range", errArchiveUnsupported)
	}
	if sign != 0 {
		return -int64(v), nil
	}
	return int64(v), nil
}

// str skips a string (ReadStr: a length, -1 for NULL, then the bytes) and
// reports whether it was NULL.
func (a *archiveReader) str() (null bool, err error) {
	n, err := a.int()
	if err != nil {
		return false, err
	}
	if n < 0 {
		return true, nil
	}
	return false, a.skip(n)
}

// text reads a string that is at most max bytes long; a longer one is
// skipped and read as "".
func (a *archiveReader) text(max int64) (string, error) {
	n, err := a.int()
	if err != nil || n < 0 {
		return "", err
	}
	if n > max {
		return "", a.skip(n)
	}
	b := make([]byte, n)
	for i := range b {
		if b[i], err = a.byte(); err != nil {
			return "", err
		}
	}
	return string(b), nil
}

func (a *archiveReader) strs(k int) error {
	for ; k > 0; k-- {
		if _, err := a.str(); err != nil {
			return err
		}
	}
	return nil
}

func (a *archiveReader) header() error {
	var magic [5]byte
	for i := range magic {
		b, err := a.byte()
		if err != nil {
			return err
		}
		magic[i] = b
	}
	if string(magic[:]) != "PGDMP" {
		return fmt.Errorf("%w: no PGDMP signature", errArchiveUnsupported)
	}
	var v [6]byte // major, minor, revision, intSize, offSize, format
	for i := range v {
		b, err := a.byte()
		if err != nil {
			return err
		}
		v[i] = b
	}
	a.version = int(v[0])<<16 | int(v[1])<<8
	if a.version < pgArchV1_12 || a.version > pgArchV1_16 {
		return fmt.Errorf("%w: archive version %d.%d", errArchiveUnsupported, v[0], v[1])
	}
	a.intSize, a.offSize = int(v[3]), int(v[4])
	if a.intSize < 1 || a.intSize > 8 || a.offSize < 1 || a.offSize > 8 {
		return fmt.Errorf("%w: integer size %d, offset size %d", errArchiveUnsupported, a.intSize, a.offSize)
	}
	if v[5] != pgArchiveCustom {
		return fmt.Errorf("%w: format %d", errArchiveUnsupported, v[5])
	}
	if a.version >= pgArchV1_15 {
		if _, err := a.byte(); err != nil { // compression algorithm
			return err
		}
	} else if _, err := a.int(); err != nil { // compression level
		return err
	}
	for i := 0; i < 7; i++ { // creation time: sec, min, hour, mday, mon, year, isdst
		if _, err := a.int(); err != nil {
			return err
		}
	}
	return a.strs(3) // database name, server version, pg_dump version
}

// entry reads one TOC entry (ReadToc), and with keep set returns what
// pgTOCEntry holds of it.
func (a *archiveReader) entry(keep bool) (e pgTOCEntry, err error) {
	if e.ID, err = a.int(); err != nil { // dump id
		return e, err
	}
	if _, err = a.int(); err != nil { // has data
		return e, err
	}
	if err = a.strs(3); err != nil { // table oid, oid, tag
		return e, err
	}
	if keep {
		e.Desc, err = a.text(64)
	} else {
		_, err = a.str()
	}
	if err != nil {
		return e, err
	}
	section, err := a.int()
	if err != nil {
		return e, err
	}
	e.Section = int(section)
	if err = a.strs(5); err != nil { // defn, drop, copy statement, namespace, tablespace
		return e, err
	}
	if a.version >= pgArchV1_14 {
		if err = a.strs(1); err != nil { // table access method
			return e, err
		}
	}
	if a.version >= pgArchV1_16 {
		if _, err = a.int(); err != nil { // relkind
			return e, err
		}
	}
	if err = a.strs(2); err != nil { // owner, "with oids"
		return e, err
	}
	for { // dependencies, up to a NULL; each a dump id as a string
		if !keep {
			null, err := a.str()
			if err != nil {
				return e, err
			}
			if null {
				break
			}
			continue
		}
		n, err := a.int()
		if err != nil {
			return e, err
		}
		if n < 0 {
			break
		}
		if n > 20 {
			if err := a.skip(n); err != nil {
				return e, err
			}
			continue
		}
		b := make([]byte, n)
		for i := range b {
			if b[i], err = a.byte(); err != nil {
				return e, err
			}
		}
		if id, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			e.Deps = append(e.Deps, id)
		}
	}
	// The data offset (_ReadExtraToc, ReadOffset): a flag byte, then
	// offSize bytes. K_OFFSET_NO_DATA (3) marks an entry without data.
	flag, err := a.byte()
	if err != nil {
		return e, err
	}
	e.Data = flag != 3
	return e, a.skip(int64(a.offSize))
}
