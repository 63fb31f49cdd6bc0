package identity

import (
	"crypto/x509"
	"errors"
	"testing"
)

// FuzzVerifyPeer feeds arbitrary certificate chains (a leaf and an
// optional intermediate, DER) to the peer verification. Whatever it gets,
// it must not panic, must accept only a valid SVID of the trust domain,
// and must count each refusal exactly once.
func FuzzVerifyPeer(f *testing.F) {
	ca := newTestCA(f, "weft")
	src, err := NewSource(testTD)
	if err != nil {
		f.Fatal(err)
	}
	if err := src.SetBundle([]*x509.Certificate{ca.root}); err != nil {
		f.Fatal(err)
	}
	good, _ := ca.issue(f, frontendID, nil)
	dns, _ := ca.issue(f, frontendID, func(c *x509.Certificate) { c.DNSNames = []string{"frontend"} })
	self, _ := selfSigned(f, frontendID)
	f.Add(good[0].Raw, good[1].Raw)
	f.Add(dns[0].Raw, dns[1].Raw)
	f.Add(self[0].Raw, []byte(nil))
	f.Add(good[0].Raw[:len(good[0].Raw)/2], []byte(nil))

	f.Fuzz(func(t *testing.T, leaf, inter []byte) {
		raw := [][]byte{leaf}
		if len(inter) > 0 {
			raw = append(raw, inter)
		}
		before := total(src.Rejections())
		id, err := src.verifyPeer(raw, ReasonNoClientCert)
		after := total(src.Rejections())
		if err == nil {
			if id.TrustDomain() != testTD {
				t.Fatalf("accepted %v outside the trust domain", id)
			}
			if after != before {
				t.Fatalf("accepted and counted a rejection")
			}
			return
		}
		var rej *RejectionError
		if !errors.As(err, &rej) {
			t.Fatalf("error %T (%v), want *RejectionError", err, err)
		}
		if after != before+1 {
			t.Fatalf("refused and counted %d rejections, want 1", after-before)
		}
	})
}

func total(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
