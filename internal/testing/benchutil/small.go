package benchutil

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// GenerateSmallFiles writes n small invoice files (150-700 bytes of JSON
// each) under dir, 1,000 to a folder, deterministically from seed. It is
// the data set of the file-count benchmarks: memory must not grow with n.
func GenerateSmallFiles(dir string, n int, seed uint64) (int64, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var total int64
	buf := make([]byte, 0, 1024)
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("%04d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return total, err
			}
		}
		buf = buf[:0]
		buf = fmt.Appendf(buf, `{"invoice":"INV-%09d","vendor":%d,"amount":"%d.%02d","lines":[`,
			i, rng.IntN(5000), rng.IntN(100000), rng.IntN(100))
		for l := range 1 + rng.IntN(6) {
			if l > 0 {
				buf = append(buf, ',')
			}
			buf = fmt.Appendf(buf, `{"sku":"SKU-%06d","qty":%d,"price":"%d.%02d"}`,
				rng.IntN(1000000), 1+rng.IntN(20), rng.IntN(1000), rng.IntN(100))
		}
		buf = append(buf, "]}\n"...)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("inv-%07d.json", i)), buf, 0o644); err != nil {
			return total, err
		}
		total += int64(len(buf))
	}
	return total, nil
}
