package benchutil

import (
	"io"
	"math/rand/v2"
)

// Stream returns a deterministic reader of n bytes. Incompressible bytes
// come from ChaCha8; compressible ones are CSV-like invoice lines (zstd
// reduces them to about a fifth).
func Stream(n int64, seed uint64, compressible bool) io.Reader {
	var key [32]byte
	for i := range key {
		key[i] = byte(seed>>(8*(i%8))) ^ byte(i*17)
	}
	if !compressible {
		return io.LimitReader(rand.NewChaCha8(key), n)
	}
	return io.LimitReader(&csvReader{r: rand.New(rand.NewPCG(seed, 7))}, n)
}

type csvReader struct {
	r   *rand.Rand
	buf []byte
	inv int64
}

func (c *csvReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.buf) == 0 {
			c.inv++
			b := make([]byte, 0, 160)
			b = append(b, "INV-"...)
			b = appendInt(b, c.inv, 9)
			b = append(b, ';')
			b = append(b, vendorNames[c.r.IntN(len(vendorNames))]...)
			b = append(b, ";DE"...)
			b = appendInt(b, c.r.Int64N(1e18), 18)
			b = append(b, ';')
			b = append(b, itemNames[c.r.IntN(len(itemNames))]...)
			b = append(b, ';')
			b = appendInt(b, int64(1+c.r.IntN(50)), 1)
			b = append(b, ';')
			b = appendInt(b, int64(c.r.IntN(1e7)), 1)
			b = append(b, ';')
			b = append(b, currencies[c.r.IntN(len(currencies))]...)
			b = append(b, ';')
			b = append(b, statuses[c.r.IntN(len(statuses))]...)
			b = append(b, '\n')
			c.buf = b
		}
		k := copy(p[n:], c.buf)
		c.buf = c.buf[k:]
		n += k
	}
	return n, nil
}

func appendInt(b []byte, v int64, width int) []byte {
	var d [20]byte
	i := len(d)
	for v > 0 || i == len(d) {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	for len(d)-i < width {
		i--
		d[i] = '0'
	}
	return append(b, d[i:]...)
}
