package ca_test

import (
	"testing"
	"time"
)

// BenchmarkSign measures CSR signing throughput: parse and verify a P-256
// CSR, check it, issue and parse the leaf. It reports signs/s; the CSR is
// the same every time (the key check and signature verification cost the
// same for any CSR).
func BenchmarkSign(b *testing.B) {
	c := openCA(b, b.TempDir(), newClock())
	csr := csrFor(b, catalog)
	chain, err := c.Sign(csr, catalog, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := verify(chain, c.Bundle(), t0); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Sign(csr, catalog, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signs/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Sign(csr, catalog, time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signs/s")
	})
}
