package repo

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Chunker algorithms, as named in ChunkerParams.Algorithm.
const (
	// ChunkerRabin is restic's Rabin fingerprint chunker with a secret
	// polynomial derived from the repository's PolySeed. Repositories made
	// before gear-fastcdc-v1 keep it.
	ChunkerRabin = "rabin-restic"
	// ChunkerGear is FastCDC normalized chunking over a gear rolling hash
	// whose table is derived from the repository's PolySeed (GearTable).
	// New repositories use it.
	ChunkerGear = "gear-fastcdc-v1"
)

// gearTableInfo is the HKDF info of the gear table.
const gearTableInfo = "coffer chunker gear table v1"

// GearTable derives a repository's gear table from its chunker secret
// (keys.Derived.PolySeed): 256 uint64, little-endian, from
// HKDF-SHA256(secret = seed, salt = none, info = "coffer chunker gear table v1").
func GearTable(seed []byte) *[256]uint64 {
	b, err := hkdf.Key(sha256.New, seed, nil, gearTableInfo, 256*8)
	if err != nil {
		// Only possible for lengths above 255*32 bytes.
		panic("repo: internal error: " + err.Error())
	}
	var t [256]uint64
	for i := range t {
		t[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return &t
}

// A Chunker cuts a stream into content-defined chunks.
//
// Next returns the next chunk, and io.EOF after the last one. If buf can
// hold a chunk of the maximum size (cap(buf) >= MaxSize), the chunk is read
// into buf and the result is a prefix of buf[:cap(buf)]: it stays valid as
// long as the caller keeps buf and does not write to it, and the chunker
// keeps no reference to buf once Next returns. Otherwise the result is a
// slice of the chunker's own buffer, valid until the next call of Next or
// Reset (at least). The gear chunker reads the bytes straight into that
// buffer, copying only those read past the previous boundary; the Rabin
// one copies each chunk out of restic's read buffer.
//
// Reset starts a new stream with the same parameters and key.
type Chunker interface {
	Next(buf []byte) ([]byte, error)
	Reset(r io.Reader)
}

// Chunkers returns a constructor of chunkers for the repository's config,
// each not yet reading a stream (call Reset). A config naming an algorithm
// this version does not know is refused: a backup chunked otherwise would
// not deduplicate against the repository's other backups.
func (r *Repository) Chunkers(ctx context.Context) (func() Chunker, error) {
	p := r.Config.Chunker
	if err := p.check(); err != nil {
		return nil, err
	}
	if p.Algorithm == ChunkerRabin {
		pol, err := r.Polynomial(ctx)
		if err != nil {
			return nil, err
		}
		return func() Chunker { return newRabinChunker(pol, p) }, nil
	}
	s, err := r.Secrets(ctx)
	if err != nil {
		return nil, err
	}
	t := GearTable(s.PolySeed)
	return func() Chunker { return NewGearChunker(t, p) }, nil
}

// check says whether coffer can chunk with p.
func (p ChunkerParams) check() error {
	if p.Algorithm != ChunkerRabin && p.Algorithm != ChunkerGear {
		return fmt.Errorf("the repository chunks with %q, which this version of coffer does not know (it knows %s and %s)",
			p.Algorithm, ChunkerRabin, ChunkerGear)
	}
	if p.MinSize > p.MaxSize || p.MaxSize == 0 || p.MaxSize > 1<<30 || p.AverageBits < 1 || p.AverageBits > 30 {
		return fmt.Errorf("the repository's chunker parameters are out of range: min %d, max %d, average bits %d",
			p.MinSize, p.MaxSize, p.AverageBits)
	}
	return nil
}

// rabinChunker is restic's chunker behind the Chunker interface.
type rabinChunker struct {
	pol chunker.Pol
	p   ChunkerParams
	c   *chunker.Chunker
}

func newRabinChunker(pol chunker.Pol, p ChunkerParams) *rabinChunker {
	return &rabinChunker{pol: pol, p: p}
}

func (c *rabinChunker) Reset(r io.Reader) {
	if c.c == nil {
		c.c = chunker.NewWithBoundaries(r, c.pol, c.p.MinSize, c.p.MaxSize)
	} else {
		c.c.ResetWithBoundaries(r, c.pol, c.p.MinSize, c.p.MaxSize)
	}
	c.c.SetAverageBits(c.p.AverageBits)
}

// Next copies the chunk from restic's buffer into buf (restic reads into
// its own buffer).
func (c *rabinChunker) Next(buf []byte) ([]byte, error) {
	ch, err := c.c.Next(buf[:0])
	if err != nil {
		return nil, err
	}
	return ch.Data, nil
}

// GearChunker is gear-fastcdc-v1: FastCDC's normalized chunking (Xia et
// al., 2016) over a gear rolling hash, h = h<<1 + table[b], with a keyed
// table (GearTable). The boundary after byte i is decided by the hash of
// the 64 bytes ending at i alone (older bytes have shifted out), and by the
// chunk's length so far:
//
//   - below MinSize, no boundary;
//   - from MinSize to the normal size (2^AverageBits, at least MinSize), a
//     boundary where the top AverageBits+2 bits of h are zero;
//   - from there to MaxSize, where the top AverageBits-2 bits are zero;
//   - at MaxSize, a boundary in any case.
//
// Hashing starts 64 bytes before MinSize, so that a boundary past MinSize
// depends only on the content, not on where the chunk began.
type GearChunker struct {
	table        *[256]uint64
	min, max     int
	normal       int
	maskS, maskL uint64

	r     io.Reader
	err   error  // the reader's error (io.EOF at the end), sticky
	stash []byte // read past the last boundary, the next chunk's start
	own   []byte // the buffer when the caller's is too small
	empty int    // reads in a row that returned nothing
}

const (
	// gearWindow is how many bytes a gear hash depends on.
	gearWindow = 64
	// gearNC is the normalization level: how many bits the masks differ
	// from AverageBits.
	gearNC = 2
	// gearReadSize bounds a read past MinSize: what is read past a
	// boundary is copied to the next chunk's buffer.
	gearReadSize = 64 << 10
	// maxEmptyReads is how many reads in a row may return no bytes and no
	// error before the chunker gives up with io.ErrNoProgress.
	maxEmptyReads = 100
)

// NewGearChunker returns a gear-fastcdc-v1 chunker with table and the
// sizes of p (its Algorithm is not looked at). Call Reset before Next.
func NewGearChunker(table *[256]uint64, p ChunkerParams) *GearChunker {
	c := &GearChunker{table: table, min: int(p.MinSize), max: int(p.MaxSize)}
	c.normal = min(max(1<<p.AverageBits, c.min), c.max)
	c.maskS = topBits(p.AverageBits + gearNC)
	c.maskL = topBits(max(p.AverageBits-gearNC, 1))
	return c
}

// topBits returns a mask of the n highest bits of a uint64: a gear hash's
// high bits depend on the most bytes.
func topBits(n int) uint64 {
	n = min(max(n, 0), 64)
	return ^uint64(0) << (64 - n)
}

// Reset starts reading r.
func (c *GearChunker) Reset(r io.Reader) {
	c.r, c.err, c.empty = r, nil, 0
	c.stash = c.stash[:0]
}

// Next returns the next chunk (see Chunker for where it lies).
func (c *GearChunker) Next(dst []byte) ([]byte, error) {
	if c.r == nil {
		return nil, errors.New("chunker: no reader (Reset was not called)")
	}
	buf := dst
	if cap(buf) < c.max {
		if c.own == nil {
			c.own = make([]byte, c.max)
		}
		buf = c.own
	}
	buf = buf[:c.max]
	n := copy(buf, c.stash)
	c.stash = c.stash[:0]
	// Up to MinSize no boundary can fall: read it whole.
	for n < c.min && c.err == nil {
		n = c.read(buf, n, c.min)
	}
	var h uint64
	pos := max(c.min-gearWindow, 0)
	for {
		if pos < n {
			var cut int
			if cut, h = c.scan(buf, pos, n, h); cut > 0 {
				c.stash = append(c.stash, buf[cut:n]...)
				return buf[:cut], nil
			}
			pos = n
		}
		if n == c.max || c.err != nil {
			break
		}
		n = c.read(buf, n, min(n+gearReadSize, c.max))
	}
	if c.err != nil && c.err != io.EOF {
		return nil, c.err
	}
	if n == 0 {
		return nil, io.EOF
	}
	return buf[:n], nil
}

// scan hashes b[pos:n] on from h and returns the first boundary in it
// (the length of the chunk), or 0.
func (c *GearChunker) scan(b []byte, pos, n int, h uint64) (int, uint64) {
	t := c.table
	// Up to MinSize-1 the hash is only primed: a boundary after byte i
	// makes a chunk of i+1 bytes.
	end := min(n, max(c.min-1, 0))
	for i := pos; i < end; i++ {
		h = h<<1 + t[b[i]]
	}
	pos = max(pos, end)
	end = min(n, c.normal-1)
	for i := pos; i < end; i++ {
		h = h<<1 + t[b[i]]
		if h&c.maskS == 0 {
			return i + 1, h
		}
	}
	pos = max(pos, end)
	for i := pos; i < n; i++ {
		h = h<<1 + t[b[i]]
		if h&c.maskL == 0 {
			return i + 1, h
		}
	}
	return 0, h
}

// read does one Read into buf[n:want] and returns the new fill. An error,
// or too many empty reads in a row, is kept in c.err.
func (c *GearChunker) read(buf []byte, n, want int) int {
	m, err := c.r.Read(buf[n:want])
	if m < 0 || m > want-n {
		c.err = fmt.Errorf("chunker: the reader returned %d bytes for a buffer of %d", m, want-n)
		return n
	}
	n += m
	switch {
	case err != nil:
		c.err = err
	case m > 0:
		c.empty = 0
	default:
		if c.empty++; c.empty >= maxEmptyReads {
			c.err = io.ErrNoProgress
		}
	}
	return n
}
