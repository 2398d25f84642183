package benchutil

// Throughput of the pipeline's per-byte primitives on 512 KiB chunks (the
// repository's average chunk size), to weigh changes such as the zstd level
// or the keyed hash:
//
//	go test -run '^$' -bench . ./internal/testing/benchutil/

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

const chunkSize = 512 << 10

func chunk(b *testing.B, compressible bool) []byte {
	data, err := io.ReadAll(Stream(chunkSize, 3, compressible))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkZstd(b *testing.B) {
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		for _, kind := range []struct {
			name string
			c    bool
		}{{"compressible", true}, {"incompressible", false}} {
			b.Run(lvl.String()+"/"+kind.name, func(b *testing.B) {
				data := chunk(b, kind.c)
				var dst []byte
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					dst = enc.EncodeAll(data, dst[:0])
				}
				b.ReportMetric(float64(len(dst))/float64(len(data)), "ratio")
			})
		}
	}
	// Small invoice files are one chunk each.
	b.Run("default/4KiB-json", func(b *testing.B) {
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		data := chunk(b, true)[:4<<10]
		var dst []byte
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			dst = enc.EncodeAll(data, dst[:0])
		}
	})
}

func BenchmarkHash(b *testing.B) {
	data := chunk(b, false)
	key := make([]byte, 32)
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sha256.Sum256(data)
		}
	})
	b.Run("hmac-sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			m := hmac.New(sha256.New, key)
			m.Write(data)
			m.Sum(nil)
		}
	})
}

func BenchmarkAgeEncrypt(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat(chunk(b, false), 32) // a 16 MiB pack
	var out bytes.Buffer
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		out.Reset()
		w, err := age.Encrypt(&out, id.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		w.Write(data)
		w.Close()
	}
}
