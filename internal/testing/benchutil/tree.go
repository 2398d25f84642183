// Package benchutil generates deterministic benchmark data: a folder that
// resembles an invoice archive (GenerateTree) and byte streams of a chosen
// compressibility (Stream). It is used by scripts/bench.sh (through
// cmd/gendata) and by the Go benchmarks in package backup.
package benchutil

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TreeStats describes a generated tree.
type TreeStats struct {
	Files, Small, Docs, Large int
	Bytes                     int64
}

var (
	vendorNames = []string{"Nordwind Logistik GmbH", "Alpen Bau AG", "Rhein Software KG", "Baltic Druck e.K.", "Hanse Energie SE",
		"Sonnen Metall GmbH", "Berg Beratung GmbH & Co. KG", "Elbe Reinigung GmbH", "Adler Catering AG", "Linden Elektro KG",
		"Falken Transport GmbH", "Mosel Papier AG", "Isar Medien GmbH", "Eichen Technik SE", "Kraft Logistik GmbH", "Stern Bau KG"}
	itemNames = []string{"Consulting hours", "Pallet transport", "Office supplies", "Server hosting", "Cleaning service",
		"Printing of brochures", "Electrical installation", "Software licence", "Catering", "Steel beams",
		"Maintenance contract", "Travel expenses"}
	currencies = []string{"EUR", "EUR", "EUR", "EUR", "EUR", "USD", "CHF", "GBP"}
	statuses   = []string{"open", "paid", "paid", "paid", "overdue", "cancelled"}
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type gen struct {
	root   string
	r      *rand.Rand
	chacha *rand.ChaCha8
	st     TreeStats
	bw     *bufio.Writer
	inv    int64
}

// GenerateTree writes about total bytes of invoice-archive-like files under
// dir, deterministically from seed. With large, about a quarter of the bytes
// are in a few 50-100 MB files (fewer and smaller when total is small).
func GenerateTree(dir string, total int64, seed uint64, large bool) (TreeStats, error) {
	var key [32]byte
	for i := range key {
		key[i] = byte(seed >> (8 * (i % 8)))
		key[i] ^= byte(i * 31)
	}
	g := &gen{root: dir, r: rand.New(rand.NewPCG(seed, 0x1badc0ffee)), chacha: rand.NewChaCha8(key),
		bw: bufio.NewWriterSize(nil, 1<<20), inv: int64(seed) * 10_000_000}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return g.st, err
	}
	smallShare, docShare := 0.35, 0.40
	if !large {
		smallShare, docShare = 0.45, 0.55
	}
	smallBudget := int64(float64(total) * smallShare)
	docBudget := int64(float64(total) * docShare)
	largeBudget := total - smallBudget - docBudget
	if !large {
		largeBudget = 0
	}
	// Interleave small invoices and documents by day, as an archive grows.
	day := 0
	var smallDone, docDone int64
	for smallDone < smallBudget || docDone < docBudget {
		d := epoch.AddDate(0, 0, day%730)
		sub := filepath.Join(fmt.Sprintf("%04d", d.Year()), fmt.Sprintf("%02d", d.Month()), fmt.Sprintf("%02d", d.Day()))
		if day >= 730 {
			sub = filepath.Join(sub, fmt.Sprintf("batch-%d", day/730))
		}
		for i := 0; i < 60 && smallDone < smallBudget; i++ {
			n, err := g.smallInvoice(filepath.Join("invoices", sub), d)
			if err != nil {
				return g.st, err
			}
			smallDone += n
		}
		for i := 0; i < 3 && docDone < docBudget; i++ {
			n, err := g.document(filepath.Join("documents", sub), d)
			if err != nil {
				return g.st, err
			}
			docDone += n
		}
		day++
	}
	for i := 0; largeBudget > 0; i++ {
		size := int64(50<<20) + g.r.Int64N(50<<20)
		if size > largeBudget || largeBudget-size < 20<<20 {
			size = largeBudget
		}
		var err error
		if i%2 == 0 {
			err = g.largeCSV(fmt.Sprintf("exports/invoice-lines-%d.csv", 2024+i/2), size)
		} else {
			err = g.largeBlob(fmt.Sprintf("archive/scans-%d.tar.gz", 2024+i/2), size)
		}
		if err != nil {
			return g.st, err
		}
		largeBudget -= size
	}
	return g.st, nil
}

func (g *gen) create(rel string) (*os.File, error) {
	p := filepath.Join(g.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	return os.Create(p)
}

// write creates rel and calls fill with a buffered writer.
func (g *gen) write(rel string, fill func(w *bufio.Writer) error) (int64, error) {
	f, err := g.create(rel)
	if err != nil {
		return 0, err
	}
	g.bw.Reset(f)
	err = fill(g.bw)
	if err == nil {
		err = g.bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(filepath.Join(g.root, rel))
	if err != nil {
		return 0, err
	}
	g.st.Files++
	g.st.Bytes += fi.Size()
	return fi.Size(), nil
}

func (g *gen) iban() string {
	return fmt.Sprintf("DE%02d%08d%010d", g.r.IntN(90)+10, g.r.IntN(1e8), g.r.Int64N(1e10))
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// smallInvoice writes one invoice as JSON (70%) or CSV (30%), 1-12 KB.
func (g *gen) smallInvoice(dir string, d time.Time) (int64, error) {
	g.inv++
	id := g.inv
	vendor := vendorNames[g.r.IntN(len(vendorNames))]
	cur := currencies[g.r.IntN(len(currencies))]
	lines := 1 + g.r.IntN(40)
	g.st.Small++
	if g.r.IntN(10) < 7 {
		return g.write(filepath.Join(dir, fmt.Sprintf("INV-%09d.json", id)), func(w *bufio.Writer) error {
			fmt.Fprintf(w, "{\n  \"number\": \"INV-%09d\",\n  \"issued\": %q,\n  \"due\": %q,\n  \"status\": %q,\n",
				id, d.Format("2006-01-02"), d.AddDate(0, 0, 30).Format("2006-01-02"), statuses[g.r.IntN(len(statuses))])
			fmt.Fprintf(w, "  \"vendor\": {\"name\": %q, \"iban\": %q, \"vat_id\": \"DE%09d\"},\n  \"currency\": %q,\n  \"lines\": [\n",
				vendor, g.iban(), g.r.IntN(1e9), cur)
			var total int64
			for i := range lines {
				q := int64(1 + g.r.IntN(50))
				p := int64(100 + g.r.IntN(500000))
				total += q * p
				sep := ","
				if i == lines-1 {
					sep = ""
				}
				fmt.Fprintf(w, "    {\"no\": %d, \"description\": %q, \"quantity\": %d, \"unit_price\": \"%s\", \"amount\": \"%s\", \"tax_rate\": \"19.00\"}%s\n",
					i+1, itemNames[g.r.IntN(len(itemNames))], q, cents(p), cents(q*p), sep)
			}
			fmt.Fprintf(w, "  ],\n  \"net\": \"%s\",\n  \"tax\": \"%s\",\n  \"total\": \"%s\"\n}\n", cents(total), cents(total*19/100), cents(total*119/100))
			return nil
		})
	}
	return g.write(filepath.Join(dir, fmt.Sprintf("INV-%09d.csv", id)), func(w *bufio.Writer) error {
		fmt.Fprintln(w, "invoice;issued;vendor;iban;line;description;quantity;unit_price;amount;currency")
		ib := g.iban()
		for i := range lines {
			q := int64(1 + g.r.IntN(50))
			p := int64(100 + g.r.IntN(500000))
			fmt.Fprintf(w, "INV-%09d;%s;%s;%s;%d;%s;%d;%s;%s;%s\n", id, d.Format("2006-01-02"), vendor, ib, i+1,
				itemNames[g.r.IntN(len(itemNames))], q, cents(p), cents(q*p), cur)
		}
		return nil
	})
}

// document writes a PDF-like file: a small text header and trailer around
// incompressible bytes (compressed streams, scanned images), 30 KB - 1.5 MB.
func (g *gen) document(dir string, d time.Time) (int64, error) {
	g.inv++
	size := int64(30<<10) + int64(float64(1470<<10)*g.r.Float64()*g.r.Float64())
	g.st.Docs++
	return g.write(filepath.Join(dir, fmt.Sprintf("INV-%09d.pdf", g.inv)), func(w *bufio.Writer) error {
		fmt.Fprintf(w, "%%PDF-1.7\n%%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R /Title (Invoice INV-%09d %s) >>\nendobj\n3 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n",
			g.inv, d.Format("2006-01-02"), size)
		if _, err := io.CopyN(w, g.chacha, size); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nendstream\nendobj\ntrailer\n<< /Root 1 0 R /Size 4 >>\n%%%%EOF\n")
		return nil
	})
}

func (g *gen) largeCSV(rel string, size int64) error {
	g.st.Large++
	_, err := g.write(rel, func(w *bufio.Writer) error {
		fmt.Fprintln(w, "invoice;issued;vendor;iban;line;description;quantity;unit_price;amount;currency;status")
		var n int64
		var sb strings.Builder
		for n < size {
			sb.Reset()
			g.inv++
			d := epoch.AddDate(0, 0, g.r.IntN(730))
			q := int64(1 + g.r.IntN(50))
			p := int64(100 + g.r.IntN(500000))
			fmt.Fprintf(&sb, "INV-%09d;%s;%s;%s;%d;%s;%d;%s;%s;%s;%s\n", g.inv, d.Format("2006-01-02"),
				vendorNames[g.r.IntN(len(vendorNames))], g.iban(), 1+g.r.IntN(20), itemNames[g.r.IntN(len(itemNames))],
				q, cents(p), cents(q*p), currencies[g.r.IntN(len(currencies))], statuses[g.r.IntN(len(statuses))])
			s := sb.String()
			if n+int64(len(s)) > size {
				s = s[:size-n]
			}
			w.WriteString(s)
			n += int64(len(s))
		}
		return nil
	})
	return err
}

func (g *gen) largeBlob(rel string, size int64) error {
	g.st.Large++
	_, err := g.write(rel, func(w *bufio.Writer) error {
		_, err := io.CopyN(w, g.chacha, size)
		return err
	})
	return err
}
