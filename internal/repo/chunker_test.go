package repo_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/restic/chunker"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/storage"
)

// small are scaled-down parameters (2 KiB min, 8 KiB normal, 64 KiB max)
// so that the tests see thousands of chunks in a few MiB.
var small = repo.ChunkerParams{Algorithm: repo.ChunkerGear, MinSize: 2 << 10, MaxSize: 64 << 10, AverageBits: 13}

var defaults = repo.ChunkerParams{Algorithm: repo.ChunkerGear, MinSize: repo.DefaultChunkMin,
	MaxSize: repo.DefaultChunkMax, AverageBits: repo.DefaultChunkAvgBits}

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

func table(seed byte) *[256]uint64 {
	return repo.GearTable(bytes.Repeat([]byte{seed}, 64))
}

// chunks cuts r with c and returns the chunk lengths, checking that the
// chunks put together are want.
func chunks(t *testing.T, c repo.Chunker, r io.Reader, want []byte, buf []byte) []int {
	t.Helper()
	c.Reset(r)
	var lens []int
	var got []byte
	for {
		b, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatal("empty chunk")
		}
		lens = append(lens, len(b))
		got = append(got, b...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("chunks put together are %d bytes, not the %d read", len(got), len(want))
	}
	return lens
}

func TestGearTable(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 64)
	b, err := hkdf.Key(sha256.New, seed, nil, "coffer chunker gear table v1", 2048)
	if err != nil {
		t.Fatal(err)
	}
	tab := repo.GearTable(seed)
	for i := range tab {
		if got, want := tab[i], binary.LittleEndian.Uint64(b[8*i:]); got != want {
			t.Fatalf("table[%d] = %#x, want %#x", i, got, want)
		}
	}
	if *repo.GearTable(bytes.Repeat([]byte{8}, 64)) == *tab {
		t.Error("two seeds give one table")
	}
}

// TestGearCutRule: no chunk below the minimum but the last, none above the
// maximum, the average near the normal size on random data, and the same
// boundaries whatever sizes the reads return.
func TestGearCutRule(t *testing.T) {
	data := randBytes(1, 16<<20)
	c := repo.NewGearChunker(table(1), small)
	lens := chunks(t, c, bytes.NewReader(data), data, nil)
	for i, n := range lens {
		if n > int(small.MaxSize) || (n < int(small.MinSize) && i < len(lens)-1) {
			t.Fatalf("chunk %d is %d bytes, outside [%d, %d]", i, n, small.MinSize, small.MaxSize)
		}
	}
	// FastCDC's normalization: the mean lies a little above the normal
	// size (8 KiB here, the mask switching there), far below the maximum.
	mean := float64(len(data)) / float64(len(lens))
	t.Logf("mean chunk %.0f bytes over %d chunks", mean, len(lens))
	if mean < 8<<10 || mean > 11<<10 {
		t.Errorf("mean chunk %.0f bytes over %d chunks, want 8-11 KiB", mean, len(lens))
	}
	for name, r := range map[string]io.Reader{
		"one byte a read":  iotest.OneByteReader(bytes.NewReader(data[:1<<20])),
		"half reads":       iotest.HalfReader(bytes.NewReader(data[:1<<20])),
		"data with io.EOF": iotest.DataErrReader(bytes.NewReader(data[:1<<20])),
	} {
		got := chunks(t, c, r, data[:1<<20], make([]byte, 0, small.MaxSize))
		want := chunks(t, c, bytes.NewReader(data[:1<<20]), data[:1<<20], nil)
		if !equal(got, want) {
			t.Errorf("%s: boundaries differ from one read of it all", name)
		}
	}
	// A stream without boundaries (zeros hash to a constant) is cut at the
	// maximum.
	zeros := make([]byte, 10*small.MaxSize+5)
	lens = chunks(t, c, bytes.NewReader(zeros), zeros, nil)
	if len(lens) != 11 || lens[0] != int(small.MaxSize) || lens[10] != 5 {
		t.Errorf("zeros cut into %v", lens)
	}
	// Below the minimum: one chunk; nothing: none.
	if lens := chunks(t, c, bytes.NewReader(data[:100]), data[:100], nil); !equal(lens, []int{100}) {
		t.Errorf("100 bytes cut into %v", lens)
	}
	if lens := chunks(t, c, bytes.NewReader(nil), nil, nil); len(lens) != 0 {
		t.Errorf("no bytes cut into %v", lens)
	}
}

// TestGearDefaultSizes: with the repository defaults the mean chunk on
// random data is near the 512 KiB normal size.
func TestGearDefaultSizes(t *testing.T) {
	data := randBytes(2, 96<<20)
	c := repo.NewGearChunker(table(1), defaults)
	lens := chunks(t, c, bytes.NewReader(data), data, make([]byte, 0, defaults.MaxSize))
	mean := float64(len(data)) / float64(len(lens))
	t.Logf("mean chunk %.0f bytes over %d chunks", mean, len(lens))
	if mean < 512<<10 || mean > 720<<10 {
		t.Errorf("mean chunk %.0f bytes over %d chunks, want 512-720 KiB", mean, len(lens))
	}
	for i, n := range lens[:len(lens)-1] {
		if n < repo.DefaultChunkMin || n > repo.DefaultChunkMax {
			t.Fatalf("chunk %d is %d bytes", i, n)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGearKeyed: the same key cuts the same data alike; another key cuts it
// elsewhere.
func TestGearKeyed(t *testing.T) {
	data := randBytes(3, 4<<20)
	a := chunks(t, repo.NewGearChunker(table(1), small), bytes.NewReader(data), data, nil)
	b := chunks(t, repo.NewGearChunker(table(1), small), bytes.NewReader(data), data, nil)
	if !equal(a, b) {
		t.Fatal("one key, two cuts")
	}
	c := chunks(t, repo.NewGearChunker(table(2), small), bytes.NewReader(data), data, nil)
	// Boundaries as offsets: with another key few (by chance) coincide.
	same := common(offsets(a), offsets(c))
	if same > len(a)/10 {
		t.Errorf("another key shares %d of %d boundaries", same, len(a))
	}
}

func offsets(lens []int) map[int]bool {
	m := map[int]bool{}
	off := 0
	for _, n := range lens {
		off += n
		m[off] = true
	}
	return m
}

func common(a, b map[int]bool) int {
	n := 0
	for k := range a {
		if b[k] {
			n++
		}
	}
	return n
}

// TestGearShift: bytes inserted at the front change only the first
// chunks; after them the boundaries are the old ones, shifted.
func TestGearShift(t *testing.T) {
	data := randBytes(4, 4<<20)
	c := repo.NewGearChunker(table(1), small)
	before := chunks(t, c, bytes.NewReader(data), data, nil)
	for _, ins := range []int{1, 100, 5000} {
		shifted := append(randBytes(5, ins), data...)
		after := chunks(t, c, bytes.NewReader(shifted), shifted, nil)
		old := offsets(before)
		// Count the new chunks (whose end is not an old boundary shifted).
		changed, off := 0, -ins
		for _, n := range after {
			off += n
			if !old[off] {
				changed++
			}
		}
		if changed > 3 {
			t.Errorf("%d bytes inserted at the front changed %d of %d chunks", ins, changed, len(after))
		}
	}
}

// TestGearBuffer: a buffer of MaxSize receives the chunk (no copy after
// it, and the chunk stays when the next is read into another); a smaller
// one leaves it in the chunker's own buffer.
func TestGearBuffer(t *testing.T) {
	data := randBytes(6, 1<<20)
	c := repo.NewGearChunker(table(1), small)
	c.Reset(bytes.NewReader(data))
	buf1 := make([]byte, 0, small.MaxSize)
	b1, err := c.Next(buf1)
	if err != nil {
		t.Fatal(err)
	}
	if &b1[0] != &buf1[:1][0] {
		t.Error("the chunk is not in the buffer given")
	}
	keep := bytes.Clone(b1)
	// The chunker keeps no reference to buf1: what lies past the chunk
	// may be overwritten (the backup lends buffers on) before the next.
	tail := buf1[len(b1):cap(buf1)]
	for i := range tail {
		tail[i] = 0xa5
	}
	buf2 := make([]byte, 0, small.MaxSize)
	b2, err := c.Next(buf2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, keep) {
		t.Error("the next chunk wrote into the previous chunk's buffer")
	}
	if !bytes.Equal(b2, data[len(b1):len(b1)+len(b2)]) {
		t.Error("the next chunk read from the previous chunk's buffer after Next returned")
	}
	b3, err := c.Next(make([]byte, 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	if len(b3) < int(small.MinSize) {
		t.Errorf("chunk in the chunker's buffer is %d bytes", len(b3))
	}
}

// spinReader returns n bytes, then (0, nil) forever.
type spinReader struct{ n int }

func (r *spinReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, nil
	}
	k := min(r.n, len(p))
	r.n -= k
	return k, nil
}

// TestGearNoProgress: a reader that returns nothing, again and again, is
// given up with io.ErrNoProgress instead of being asked forever; a few
// empty reads are waited through; an error is passed on.
func TestGearNoProgress(t *testing.T) {
	c := repo.NewGearChunker(table(1), small)
	for _, n := range []int{0, 100, 3 << 10} {
		c.Reset(&spinReader{n: n})
		var err error
		for range 10 {
			if _, err = c.Next(nil); err != nil {
				break
			}
		}
		if !errors.Is(err, io.ErrNoProgress) {
			t.Errorf("after %d bytes: Next = %v, want io.ErrNoProgress", n, err)
		}
	}
	data := randBytes(7, 100<<10)
	r := &flaky{data: data}
	if lens := chunks(t, c, r, data, nil); len(lens) == 0 {
		t.Error("no chunks")
	}
	boom := errors.New("boom")
	c.Reset(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
	var err error
	for err == nil {
		_, err = c.Next(nil)
	}
	if !errors.Is(err, boom) {
		t.Errorf("Next = %v, want the reader's error", err)
	}
}

// flaky returns (0, nil) twice before each read of data.
type flaky struct {
	data []byte
	k    int
}

func (r *flaky) Read(p []byte) (int, error) {
	if r.k++; r.k%3 != 0 {
		return 0, nil
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestChunkersFollowTheConfig: a repository made with the Rabin chunker
// cuts with restic's chunker and its secret polynomial; a new one with the
// gear chunker keyed by its PolySeed.
func TestChunkersFollowTheConfig(t *testing.T) {
	ctx := context.Background()
	data := randBytes(8, 6<<20)
	for _, alg := range []string{repo.ChunkerRabin, repo.ChunkerGear} {
		var tr *testrepo.Repo
		if alg == repo.ChunkerRabin {
			tr = testrepo.New(t, repo.WithChunker(repo.ChunkerRabin))
		} else {
			tr = testrepo.New(t)
		}
		r := tr.Host(t)
		if got := r.Config.Chunker.Algorithm; got != alg {
			t.Fatalf("config chunker %q, want %q", got, alg)
		}
		mk, err := r.Chunkers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := chunks(t, mk(), bytes.NewReader(data), data, make([]byte, 0, repo.DefaultChunkMax))
		var want []int
		if alg == repo.ChunkerRabin {
			pol, err := r.Polynomial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rc := chunker.NewWithBoundaries(bytes.NewReader(data), pol, repo.DefaultChunkMin, repo.DefaultChunkMax)
			rc.SetAverageBits(repo.DefaultChunkAvgBits)
			for {
				ch, err := rc.Next(nil)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, int(ch.Length))
			}
		} else {
			s, err := r.Secrets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want = chunks(t, repo.NewGearChunker(repo.GearTable(s.PolySeed), defaults), bytes.NewReader(data), data, nil)
		}
		if !equal(got, want) {
			t.Errorf("%s: cut %v, want %v", alg, got, want)
		}
	}
}

// TestChunkerFixed: the chunker of a repository cannot change, and one this
// version does not know is refused rather than replaced.
func TestChunkerFixed(t *testing.T) {
	ctx := context.Background()
	tr := testrepo.New(t, repo.WithChunker(repo.ChunkerRabin))
	r, err := repo.Open(ctx, tr.Store, repo.OpenOptions{Owner: tr.Owner.Public(), OwnerKey: tr.Owner, Identities: tr.Identities})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*repo.Config){
		"algorithm": func(c *repo.Config) { c.Chunker.Algorithm = repo.ChunkerGear },
		"sizes":     func(c *repo.Config) { c.Chunker.MinSize = 1 << 10 },
	} {
		_, err := repo.UpdateConfig(ctx, r, tr.Owner, func(c *repo.Config) error { edit(c); return nil })
		if !errors.Is(err, repo.ErrChunkerChange) {
			t.Errorf("%s: UpdateConfig = %v, want ErrChunkerChange", name, err)
		}
	}
	if r2 := tr.Host(t); r2.Config.Seq != 1 || r2.Config.Chunker.Algorithm != repo.ChunkerRabin {
		t.Errorf("config %d chunks with %q after the refused changes", r2.Config.Seq, r2.Config.Chunker.Algorithm)
	}
	// Another change still goes through, keeping the chunker.
	cfg, err := repo.UpdateConfig(ctx, r, tr.Owner, func(c *repo.Config) error { return nil })
	if err != nil || cfg.Chunker.Algorithm != repo.ChunkerRabin {
		t.Errorf("UpdateConfig = %v, chunker %q", err, cfg.Chunker.Algorithm)
	}
	r.Config.Chunker.Algorithm = "rabin-restic-v9"
	if _, err := r.Chunkers(ctx); err == nil {
		t.Error("an unknown chunker was accepted")
	}
	st, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := keys.LoadRecipientsFile(tr.Keys.Recipients)
	hp, _ := keys.LoadHostPublic(tr.Keys.SigningPub)
	if _, err := repo.Init(ctx, st, repo.InitOptions{Owner: tr.Owner, Recipients: rs, Hosts: []keys.HostPublic{hp}},
		repo.WithChunker("fixed")); err == nil {
		t.Error("Init with an unknown chunker succeeded")
	}
}

// gearReference is the cut rule of doc/design.md section 4 for
// gear-fastcdc-v1, written from the text and for clarity, not speed: the
// lengths of the chunks of data.
func gearReference(t *[256]uint64, p repo.ChunkerParams, data []byte) []int {
	m, M, b := int(p.MinSize), int(p.MaxSize), p.AverageBits
	N := min(max(1<<b, m), M)
	top := func(n int) uint64 { return ^uint64(0) << (64 - n) }
	maskS, maskL := top(b+2), top(max(b-2, 1))
	var lens []int
	for len(data) > 0 {
		cut := min(M, len(data))
		var h uint64
		for i := max(m-64, 0); i < cut; i++ {
			h = h<<1 + t[data[i]]
			if l := i + 1; l >= m && ((l < N && h&maskS == 0) || (l >= N && h&maskL == 0)) {
				cut = l
				break
			}
		}
		lens = append(lens, cut)
		data = data[cut:]
	}
	return lens
}

// randomReads returns 0 to len(p) bytes a read, now and then none, and
// with the last bytes io.EOF if eof.
type randomReads struct {
	data []byte
	rng  *rand.Rand
	eof  bool
}

func (r *randomReads) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 0
	switch r.rng.IntN(4) {
	case 0: // nothing
	case 1:
		n = len(p)
	default:
		n = r.rng.IntN(len(p) + 1)
	}
	n = copy(p, r.data[:min(n, len(r.data))])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.eof {
		return n, io.EOF
	}
	return n, nil
}

// TestGearReference: the chunker cuts as design.md says, for sizes around
// the edges (minimum 0 or below the 64-byte window, minimum = maximum,
// normal size clamped), on random, constant and periodic data, whatever
// the reads return and whichever buffer it is given. The format is the
// boundaries: a change here would deduplicate nothing against the
// repositories already cut.
func TestGearReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for it := range 2000 {
		p := repo.ChunkerParams{Algorithm: repo.ChunkerGear, MinSize: uint(rng.IntN(300)), AverageBits: 1 + rng.IntN(9)}
		p.MaxSize = p.MinSize + 1 + uint(rng.IntN(2000))
		if it%4 == 0 {
			p.MaxSize = max(p.MinSize, 1)
		}
		var data []byte
		switch n := rng.IntN(20000); it % 3 {
		case 0:
			data = randBytes(uint64(it), n)
		case 1:
			data = make([]byte, n)
		default:
			data = bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, n/7)
		}
		tab := table(byte(it))
		var buf []byte
		if it%2 == 0 {
			buf = make([]byte, 0, p.MaxSize)
		}
		got := chunks(t, repo.NewGearChunker(tab, p), &randomReads{data: data, rng: rng, eof: it%5 < 2}, data, buf)
		if want := gearReference(tab, p, data); !equal(got, want) {
			t.Fatalf("params %+v, %d bytes: cut %v, want %v", p, len(data), got, want)
		}
	}
	// Streams of exactly the sizes at the edges, random and zeros.
	for _, p := range []repo.ChunkerParams{small, {MinSize: 0, MaxSize: 100, AverageBits: 3}, {MinSize: 64, MaxSize: 64, AverageBits: 5}} {
		m, M := int(p.MinSize), int(p.MaxSize)
		for _, n := range []int{0, 1, m - 1, m, m + 1, M - 1, M, M + 1, 2*M - 1, 2 * M, 2*M + 1, m + M} {
			for _, data := range [][]byte{randBytes(uint64(n), max(n, 0)), make([]byte, max(n, 0))} {
				for _, eof := range []bool{false, true} {
					got := chunks(t, repo.NewGearChunker(table(3), p), &randomReads{data: data, rng: rng, eof: eof}, data, nil)
					if want := gearReference(table(3), p, data); !equal(got, want) {
						t.Fatalf("params %+v, %d bytes: cut %v, want %v", p, len(data), got, want)
					}
				}
			}
		}
	}
	// Reads of more than 64 KiB are split: sizes past it.
	for it := range 12 {
		p := repo.ChunkerParams{Algorithm: repo.ChunkerGear, MinSize: uint(rng.IntN(200 << 10)), AverageBits: 10 + rng.IntN(8)}
		p.MaxSize = p.MinSize + 1 + uint(rng.IntN(300<<10))
		data := randBytes(uint64(it), rng.IntN(3<<20))
		tab := table(byte(it))
		got := chunks(t, repo.NewGearChunker(tab, p), &randomReads{data: data, rng: rng, eof: it%2 == 0}, data, nil)
		if want := gearReference(tab, p, data); !equal(got, want) {
			t.Fatalf("params %+v, %d bytes: %d chunks, want %d", p, len(data), len(got), len(want))
		}
	}
}

// TestGearGolden pins gear-fastcdc-v1's boundaries, with the default sizes
// and scaled-down ones, for a fixed secret and fixed data (SHA-256 in
// counter mode, not a library generator): chunking is part of the format.
func TestGearGolden(t *testing.T) {
	data := make([]byte, 0, 24<<20)
	for i := uint64(0); len(data) < cap(data); i++ {
		s := sha256.Sum256(binary.LittleEndian.AppendUint64(nil, i))
		data = append(data, s[:]...)
	}
	tab := repo.GearTable(bytes.Repeat([]byte("golden"), 11)[:64])
	for _, tc := range []struct {
		p    repo.ChunkerParams
		want string
	}{
		{defaults, "41 chunks 94553af7d6b1912b"},
		{small, "2712 chunks d1886fac5eb67dec"},
	} {
		lens := chunks(t, repo.NewGearChunker(tab, tc.p), bytes.NewReader(data), data, nil)
		h := sha256.New()
		for _, n := range lens {
			h.Write(binary.LittleEndian.AppendUint64(nil, uint64(n)))
		}
		if got := fmt.Sprintf("%d chunks %x", len(lens), h.Sum(nil)[:8]); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.p, got, tc.want)
		}
	}
}
