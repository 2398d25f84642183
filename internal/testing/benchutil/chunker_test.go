package benchutil

// Content-defined chunking throughput on the same 16 MiB of CSV-like data,
// with the repository's default parameters (256 KiB minimum, 4 MiB
// maximum, average bits 19): restic's Rabin chunker (repositories made
// before gear-fastcdc-v1) beside coffer's gear-fastcdc-v1 chunker
// (repo.GearChunker), each reading into a caller's buffer of the maximum
// size as the backup does:
//
//	go test -run '^$' -bench Chunker -count 5 ./internal/testing/benchutil/

import (
	"bytes"
	"io"
	"testing"

	"github.com/restic/chunker"

	"github.com/cofferhq/coffer/internal/repo"
)

func cdcData(b *testing.B) []byte {
	data, err := io.ReadAll(Stream(16<<20, 5, true))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkChunker(b *testing.B) {
	data := cdcData(b)
	p := repo.ChunkerParams{MinSize: repo.DefaultChunkMin, MaxSize: repo.DefaultChunkMax, AverageBits: repo.DefaultChunkAvgBits}
	buf := make([]byte, p.MaxSize)
	run := func(b *testing.B, next func() (int, error), reset func()) {
		b.SetBytes(int64(len(data)))
		n := 0
		for b.Loop() {
			reset()
			for {
				_, err := next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		b.ReportMetric(float64(n)/float64(b.N), "chunks/op")
	}
	b.Run("rabin-restic", func(b *testing.B) {
		pol := chunker.Pol(0x3DA3358B4DC173)
		c := chunker.NewWithBoundaries(bytes.NewReader(nil), pol, p.MinSize, p.MaxSize)
		run(b, func() (int, error) {
			ch, err := c.Next(buf[:0])
			return int(ch.Length), err
		}, func() {
			c.ResetWithBoundaries(bytes.NewReader(data), pol, p.MinSize, p.MaxSize)
			c.SetAverageBits(p.AverageBits)
		})
	})
	b.Run("gear-fastcdc-v1", func(b *testing.B) {
		c := repo.NewGearChunker(repo.GearTable(make([]byte, 64)), p)
		run(b, func() (int, error) {
			d, err := c.Next(buf[:0])
			return len(d), err
		}, func() { c.Reset(bytes.NewReader(data)) })
	})
}
