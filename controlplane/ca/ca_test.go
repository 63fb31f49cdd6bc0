package ca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/controlplane/ca"
)

func TestOpenCreatesThenReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	clk := newClock()
	first := openCA(t, dir, clk)
	leaf1 := sign(t, first, catalog)

	if n := len(first.Bundle()); n != 1 {
		t.Fatalf("bundle has %d roots, want 1", n)
	}
	root := first.Bundle()[0]
	switch {
	case !root.IsCA || !root.BasicConstraintsValid:
		t.Error("root is not a CA")
	case root.MaxPathLen != 1:
		t.Errorf("root MaxPathLen = %d, want 1", root.MaxPathLen)
	case root.CheckSignatureFrom(root) != nil:
		t.Error("root is not self-signed")
	case len(root.URIs) != 1 || root.URIs[0].String() != "spiffe://weft.local":
		t.Errorf("root URIs = %v, want [spiffe://weft.local]", root.URIs)
	case !root.NotAfter.Equal(t0.AddDate(10, 0, 0)):
		t.Errorf("root NotAfter = %v, want 10 years", root.NotAfter)
	}
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	inter := leaf1[1]
	switch {
	case !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero:
		t.Errorf("intermediate: IsCA %v MaxPathLen %d zero %v, want a CA with path length 0", inter.IsCA, inter.MaxPathLen, inter.MaxPathLenZero)
	case inter.CheckSignatureFrom(root) != nil:
		t.Error("intermediate is not signed by the root")
	case !inter.NotAfter.Equal(t0.AddDate(1, 0, 0)):
		t.Errorf("intermediate NotAfter = %v, want 1 year", inter.NotAfter)
	}

	second := openCA(t, dir, clk)
	if got, want := second.Pin(), first.Pin(); got != want {
		t.Fatalf("reopened pin %s, want %s: the root was not reloaded", got, want)
	}
	if !second.Bundle()[0].Equal(root) {
		t.Fatal("reopened bundle differs")
	}
	leaf2 := sign(t, second, catalog)
	if !leaf2[1].Equal(inter) {
		t.Fatal("reopened CA issues from another intermediate")
	}
	if _, err := verify(leaf1, second.Bundle(), clk.Now()); err != nil {
		t.Fatalf("a leaf of the first instance does not verify against the reopened bundle: %v", err)
	}
	if got := first.Pin(); !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 || got != ca.PinOf(root) {
		t.Errorf("Pin() = %q, want sha256:<64 hex> of the root", got)
	}
}

func TestFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := openCA(t, dir, newClock())
	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("dir mode %v, want 0700", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		if got := info.Mode(); got != fs.FileMode(0o600) {
			t.Errorf("%s: mode %v, want -rw-------", e.Name(), got)
		}
	}
	want := []string{"bundle.crt", "ca.json", "intermediate-1.crt", "intermediate-1.key", "intermediate-2.crt",
		"intermediate-2.key", "root-1.crt", "root-1.key", "root-2.crt", "root-2.key"}
	if !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}

	// A crash mid-write leaves a temporary file; the next Open removes it.
	leftover := filepath.Join(dir, ".root-3.key.tmp123456")
	if err := os.WriteFile(leftover, []byte("half a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	openCA(t, dir, newClock())
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover temporary file survived Open: %v", err)
	}
}

func TestSign(t *testing.T) {
	clk := newClock()
	c := openCA(t, t.TempDir(), clk)
	interNotAfter := t0.AddDate(1, 0, 0)
	for _, tc := range []struct {
		name         string
		id           spiffeid.ID
		ttl          time.Duration
		wantNotAfter time.Time
		wantCN       string
	}{
		{"default ttl", catalog, 0, t0.Add(24 * time.Hour), "catalog"},
		{"one hour", catalog, time.Hour, t0.Add(time.Hour), "catalog"},
		{"capped by the intermediate", catalog, 2 * 365 * 24 * time.Hour, interNotAfter, "catalog"},
		{"long last segment gets no CN", spiffeid.RequireFromString("spiffe://weft.local/" + strings.Repeat("a", 65)), time.Hour, t0.Add(time.Hour), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := c.Sign(csrFor(t, tc.id), tc.id, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 {
				t.Fatalf("chain of %d certificates, want leaf + intermediate", len(chain))
			}
			if slices.ContainsFunc(c.Bundle(), chain[1].Equal) {
				t.Fatal("Sign returned the root in the chain")
			}
			id, err := verify(chain, c.Bundle(), clk.Now())
			if err != nil {
				t.Fatalf("x509svid.Verify: %v", err)
			}
			if id != tc.id {
				t.Errorf("SPIFFE ID %s, want %s", id, tc.id)
			}
			leaf := chain[0]
			if !leaf.NotBefore.Equal(t0.Add(-time.Minute)) {
				t.Errorf("NotBefore %v, want a minute before now", leaf.NotBefore)
			}
			if !leaf.NotAfter.Equal(tc.wantNotAfter) {
				t.Errorf("NotAfter %v, want %v", leaf.NotAfter, tc.wantNotAfter)
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; leaf.KeyUsage != want {
				t.Errorf("KeyUsage %v, want %v", leaf.KeyUsage, want)
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(leaf.ExtKeyUsage, want) {
				t.Errorf("ExtKeyUsage %v, want %v", leaf.ExtKeyUsage, want)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Error("leaf must carry basic constraints CA:false")
			}
			if len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 || len(leaf.URIs) != 1 {
				t.Errorf("leaf SANs: URIs %v DNS %v email %v IP %v, want only the SPIFFE ID", leaf.URIs, leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses)
			}
			if got := leaf.SerialNumber.BitLen(); got != 128 {
				t.Errorf("serial of %d bits, want 128", got)
			}
			if leaf.Subject.CommonName != tc.wantCN || !slices.Equal(leaf.Subject.Organization, []string{"weft"}) {
				t.Errorf("subject %q, want O=weft CN=%q", leaf.Subject, tc.wantCN)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	c := openCA(t, t.TempDir(), newClock())
	p256 := ecKey(t, elliptic.P256())
	other := spiffeid.RequireFromString("spiffe://weft.local/ns/shop/sa/orders")
	foreign := spiffeid.RequireFromString("spiffe://other.org/ns/shop/sa/catalog")
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	badSig := newCSR(t, p256, csrSpec{uris: []string{catalog.String()}})
	badSig[len(badSig)-1] ^= 0xff // the last byte of the signature value

	only := csrSpec{uris: []string{catalog.String()}}
	for _, tc := range []struct {
		name string
		csr  []byte
		id   spiffeid.ID
		ttl  time.Duration
		want ca.Reason
	}{
		{"wrong ID", newCSR(t, p256, csrSpec{uris: []string{other.String()}}), catalog, 0, ca.ReasonIDMismatch},
		{"URI is not a SPIFFE ID", newCSR(t, p256, csrSpec{uris: []string{"https://weft.local/ns/shop/sa/catalog"}}), catalog, 0, ca.ReasonIDMismatch},
		{"extra DNS SAN", newCSR(t, p256, csrSpec{uris: only.uris, dns: []string{"catalog.shop"}}), catalog, 0, ca.ReasonSAN},
		{"email SAN", newCSR(t, p256, csrSpec{uris: only.uris, emails: []string{"ops@example.com"}}), catalog, 0, ca.ReasonSAN},
		{"IP SAN", newCSR(t, p256, csrSpec{uris: only.uris, ips: []net.IP{net.IPv4(10, 0, 0, 1)}}), catalog, 0, ca.ReasonSAN},
		{"two URIs", newCSR(t, p256, csrSpec{uris: []string{catalog.String(), other.String()}}), catalog, 0, ca.ReasonSAN},
		{"no URI", newCSR(t, p256, csrSpec{}), catalog, 0, ca.ReasonSAN},
		{"foreign trust domain", newCSR(t, p256, csrSpec{uris: []string{foreign.String()}}), foreign, 0, ca.ReasonTrustDomain},
		{"trust domain ID", newCSR(t, p256, csrSpec{uris: []string{"spiffe://weft.local"}}), td.ID(), 0, ca.ReasonTrustDomain},
		{"empty ID", newCSR(t, p256, only), spiffeid.ID{}, 0, ca.ReasonTrustDomain},
		{"bad signature", badSig, catalog, 0, ca.ReasonSignature},
		{"weak RSA key", newCSR(t, rsa1024, only), catalog, 0, ca.ReasonKey},
		{"P-224 key", newCSR(t, ecKey(t, elliptic.P224()), only), catalog, 0, ca.ReasonKey},
		{"Ed25519 key", newCSR(t, ed, only), catalog, 0, ca.ReasonKey},
		{"not DER", []byte("-----BEGIN CERTIFICATE REQUEST-----"), catalog, 0, ca.ReasonMalformed},
		{"empty", nil, catalog, 0, ca.ReasonMalformed},
		{"negative ttl", newCSR(t, p256, only), catalog, -time.Second, ca.ReasonTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := c.Sign(tc.csr, tc.id, tc.ttl)
			if err == nil {
				t.Fatalf("Sign succeeded (%s), want refusal %q", chain[0].URIs, tc.want)
			}
			var re *ca.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want *ca.RequestError", err, err)
			}
			if re.Reason != tc.want {
				t.Errorf("reason %q (%v), want %q", re.Reason, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "ca: ") {
				t.Errorf("error %q lacks the ca: prefix", err)
			}
		})
	}
}

func TestSignAcceptsKeys(t *testing.T) {
	clk := newClock()
	c := openCA(t, t.TempDir(), clk)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, csr := range map[string][]byte{
		"ECDSA P-256": csrFor(t, catalog),
		"ECDSA P-384": newCSR(t, ecKey(t, elliptic.P384()), csrSpec{uris: []string{catalog.String()}}),
		"RSA 2048":    newCSR(t, rsa2048, csrSpec{uris: []string{catalog.String()}}),
	} {
		t.Run(name, func(t *testing.T) {
			chain, err := c.Sign(csr, catalog, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verify(chain, c.Bundle(), clk.Now()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSignServing(t *testing.T) {
	clk := newClock()
	c := openCA(t, t.TempDir(), clk)
	id := spiffeid.RequireFromString("spiffe://weft.local/weft/control")
	key := ecKey(t, elliptic.P256())
	chain, err := c.SignServing(key.Public(), id, []string{"weft-control.weft-system.svc", "localhost"},
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := verify(chain, c.Bundle(), clk.Now()); err != nil || got != id {
		t.Fatalf("x509svid.Verify: %s, %v; want %s", got, err, id)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Bundle()[0])
	inters := x509.NewCertPool()
	inters.AddCert(chain[1])
	for _, host := range []string{"weft-control.weft-system.svc", "localhost", "127.0.0.1", "::1"} {
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inters,
			CurrentTime: clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", host, err)
		}
	}
	if !chain[0].NotAfter.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("NotAfter %v, want the default TTL", chain[0].NotAfter)
	}

	for _, tc := range []struct {
		name string
		pub  any
		id   spiffeid.ID
		dns  []string
		ips  []net.IP
		want ca.Reason
	}{
		{"wildcard DNS name", key.Public(), id, []string{"*.weft.local"}, nil, ca.ReasonSAN},
		{"upper-case DNS name", key.Public(), id, []string{"Control.local"}, nil, ca.ReasonSAN},
		{"bad IP", key.Public(), id, nil, []net.IP{{1, 2, 3}}, ca.ReasonSAN},
		{"foreign trust domain", key.Public(), spiffeid.RequireFromString("spiffe://other.org/control"), nil, nil, ca.ReasonTrustDomain},
		{"P-224 key", ecKey(t, elliptic.P224()).Public(), id, nil, nil, ca.ReasonKey},
		{"no key", nil, id, nil, nil, ca.ReasonKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SignServing(tc.pub, tc.id, tc.dns, tc.ips, 0)
			var re *ca.RequestError
			if !errors.As(err, &re) || re.Reason != tc.want {
				t.Fatalf("error %v, want a RequestError with reason %q", err, tc.want)
			}
		})
	}
}

func TestRootOf(t *testing.T) {
	c := openCA(t, t.TempDir(), newClock())
	leaf := sign(t, c, catalog)[0]
	root, ok := c.RootOf(leaf)
	if !ok || !root.Equal(c.Bundle()[0]) {
		t.Fatalf("RootOf(leaf) = %v, %v; want the CA's root", root, ok)
	}
	stranger := openCA(t, t.TempDir(), newClock())
	if _, ok := c.RootOf(sign(t, stranger, catalog)[0]); ok {
		t.Error("RootOf claims a leaf of another CA")
	}
	if _, ok := c.RootOf(nil); ok {
		t.Error("RootOf(nil) = true")
	}
}

// TestIntermediateRenewal: near its expiry the intermediate is re-certified
// with the same key, so leaves issued before keep verifying, and the
// renewal survives a restart.
func TestIntermediateRenewal(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	c := openCA(t, dir, clk)
	oldInter := sign(t, c, catalog)[1]

	clk.Add(oldInter.NotAfter.Sub(clk.Now()) - 30*24*time.Hour - time.Hour) // not due yet
	before := sign(t, c, catalog)
	if !before[1].Equal(oldInter) {
		t.Fatal("the intermediate was renewed more than 30 days before its expiry")
	}
	clk.Add(2 * time.Hour) // now due
	after := sign(t, c, catalog)
	newInter := after[1]
	if newInter.Equal(oldInter) {
		t.Fatal("the intermediate was not renewed")
	}
	if want := clk.Now().AddDate(1, 0, 0); !newInter.NotAfter.Equal(want) {
		t.Errorf("renewed intermediate expires %v, want %v", newInter.NotAfter, want)
	}
	if !after[0].NotAfter.Equal(clk.Now().Add(24 * time.Hour)) {
		t.Errorf("leaf NotAfter %v, want a full TTL after renewal", after[0].NotAfter)
	}
	if _, err := verify(after, c.Bundle(), clk.Now()); err != nil {
		t.Fatalf("leaf from the renewed intermediate: %v", err)
	}
	// A leaf issued before, presented with the renewed intermediate.
	if _, err := verify([]*x509.Certificate{before[0], newInter}, c.Bundle(), clk.Now()); err != nil {
		t.Fatalf("earlier leaf does not chain to the renewed intermediate: %v", err)
	}
	if root, ok := c.RootOf(before[0]); !ok || !root.Equal(c.Bundle()[0]) {
		t.Error("RootOf lost track of a leaf issued before the renewal")
	}
	if st := c.Status(); len(st.Roots) != 1 || st.Roots[0].Retiring {
		t.Errorf("status after renewal %+v, want the same single root", st)
	}

	reopened := openCA(t, dir, clk)
	if got := sign(t, reopened, catalog)[1]; !got.Equal(newInter) {
		t.Error("the renewed intermediate was not persisted")
	}
}

func TestIssuingExpired(t *testing.T) {
	clk := newClock()
	c := openCA(t, t.TempDir(), clk)
	clk.Add(11 * 365 * 24 * time.Hour) // past the root: nothing can renew the intermediate
	_, err := c.Sign(csrFor(t, catalog), catalog, 0)
	if !errors.Is(err, ca.ErrExpired) {
		t.Fatalf("Sign after the root expired: %v, want ErrExpired", err)
	}
}

// TestSignConcurrently signs from many goroutines while the roots rotate,
// and checks every result (it measures nothing; BenchmarkSign does).
func TestSignConcurrently(t *testing.T) {
	clk := newClock()
	c := openCA(t, t.TempDir(), clk)
	const workers, each = 4, 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		serials = map[string]bool{}
		chains  [][]*x509.Certificate
	)
	for range workers {
		wg.Go(func() {
			for range each {
				chain, err := c.Sign(csrFor(t, catalog), catalog, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				serials[chain[0].SerialNumber.String()] = true
				chains = append(chains, chain)
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		if err := c.Rotate(); err != nil {
			t.Error(err)
		}
		_ = c.Status()
	})
	wg.Wait()
	if len(serials) != workers*each {
		t.Fatalf("%d distinct serials for %d certificates", len(serials), workers*each)
	}
	for _, chain := range chains {
		if _, err := verify(chain, c.Bundle(), clk.Now()); err != nil {
			t.Fatalf("leaf %s: %v", chain[0].SerialNumber, err)
		}
	}
}

func TestOpenOptions(t *testing.T) {
	existing := t.TempDir()
	openCA(t, existing, newClock())
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts ca.Options
		want string
	}{
		{"no dir", ca.Options{}, "Dir is required"},
		{"partial external PKI", ca.Options{CertFile: "a.crt", KeyFile: "a.key"}, "all three or none"},
		{"negative TTL", ca.Options{Dir: t.TempDir(), WorkloadTTL: -time.Hour}, "negative WorkloadTTL"},
		{"another trust domain", ca.Options{Dir: existing, TrustDomain: spiffeid.RequireTrustDomainFromString("other.org")}, `trust domain "weft.local", not "other.org"`},
		{"dir is a file", ca.Options{Dir: file}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.Open(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ca: ") {
				t.Fatalf("Open: %v, want an error about %q", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := ca.Open(ca.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.TrustDomain().Name(); got != ca.DefaultTrustDomain {
			t.Errorf("trust domain %s, want %s", got, ca.DefaultTrustDomain)
		}
		leaf := sign(t, c, spiffeid.RequireFromString("spiffe://weft.local/x"))[0]
		if got := leaf.NotAfter.Sub(leaf.NotBefore); got != ca.DefaultWorkloadTTL+time.Minute {
			t.Errorf("lifetime %s, want the default TTL plus the minute of backdating", got)
		}
	})
}

func TestReopenRejectsTamperedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"swapped keys", func(t *testing.T, dir string) {
			swap(t, filepath.Join(dir, "root-1.key"), filepath.Join(dir, "intermediate-1.key"))
		}, "key does not match"},
		{"missing intermediate", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "intermediate-1.crt")); err != nil {
				t.Fatal(err)
			}
		}, "intermediate-1.crt"},
		{"corrupt state", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "ca.json"), []byte("{"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "decode ca.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			openCA(t, dir, newClock())
			tc.tamper(t, dir)
			_, err := ca.Open(ca.Options{Dir: dir, TrustDomain: td})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func swap(t *testing.T, a, b string) {
	t.Helper()
	tmp := a + ".swap"
	for _, mv := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
}
