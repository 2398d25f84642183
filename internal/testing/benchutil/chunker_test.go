package benchutil

// Content-defined chunking throughput: restic's Rabin chunker (the
// repository's format today) beside a gear-hash boundary scan of the kind
// FastCDC uses, on the same 16 MiB of CSV-like data, with the repository's
// default parameters (512 KiB minimum, 8 MiB maximum, 1 MiB average):
//
//	go test -run '^$' -bench Chunker -count 5 ./internal/testing/benchutil/
//
// The gear scan is a measurement only, to weigh a format change (chunk
// boundaries would differ, so dedup against older snapshots is lost once);
// it is not used by coffer.

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/restic/chunker"
)

const (
	cdcMin = 512 << 10
	cdcMax = 8 << 20
	cdcAvg = 20 // bits: 1 MiB average
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
	b.Run("rabin-restic", func(b *testing.B) {
		pol := chunker.Pol(0x3DA3358B4DC173)
		buf := make([]byte, cdcMax)
		b.SetBytes(int64(len(data)))
		n := 0
		for b.Loop() {
			c := chunker.NewWithBoundaries(bytes.NewReader(data), pol, cdcMin, cdcMax)
			c.SetAverageBits(cdcAvg)
			for {
				_, err := c.Next(buf[:0])
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
	})
	b.Run("gear", func(b *testing.B) {
		var gear [256]uint64
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range gear {
			gear[i] = rng.Uint64()
		}
		mask := uint64(1)<<cdcAvg - 1
		mask <<= 64 - cdcAvg // the top bits, as FastCDC does
		b.SetBytes(int64(len(data)))
		n := 0
		for b.Loop() {
			for rest := data; len(rest) > 0; n++ {
				cut := len(rest)
				if cut > cdcMin {
					var h uint64
					end := min(len(rest), cdcMax)
					for i := cdcMin; i < end; i++ {
						h = h<<1 + gear[rest[i]]
						if h&mask == 0 {
							cut = i + 1
							break
						}
					}
					if cut == len(rest) && end < len(rest) {
						cut = end
					}
				}
				rest = rest[cut:]
			}
		}
		b.ReportMetric(float64(n)/float64(b.N), "chunks/op")
	})
}
