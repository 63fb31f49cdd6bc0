package issuer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/issuer"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/bolt"
	"github.com/weftmesh/weft/controlplane/token"
)

var (
	td         = spiffeid.RequireTrustDomainFromString("weft.local")
	cpID       = spiffeid.RequireFromString("spiffe://weft.local/ns/weft-system/sa/control-plane")
	webID      = spiffeid.RequireFromString("spiffe://weft.local/ns/default/sa/web")
	dbID       = spiffeid.RequireFromString("spiffe://weft.local/ns/default/sa/db")
	prodWebID  = spiffeid.RequireFromString("spiffe://weft.local/ns/prod/sa/web")
	notWorkID  = spiffeid.RequireFromString("spiffe://weft.local/foo")
	deepWorkID = spiffeid.RequireFromString("spiffe://weft.local/ns/default/sa/web/extra")
)

// offsetClock is time.Now shifted by a settable offset, safe for concurrent
// use. The issuer verifies client certificates at the real time, so the
// test clocks follow it and only jump when a case needs them to.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = d
}

// lockedBuffer collects the issuer's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is an issuer served over TLS with the real CA, store and tokens.
type env struct {
	t        *testing.T
	ca       *ca.CA
	st       *bolt.Store
	tokens   *token.Manager
	iss      *issuer.Issuer
	srv      *httptest.Server
	caClock  *offsetClock
	tokClock *offsetClock
	logs     *lockedBuffer

	mu      sync.Mutex
	secrets []string // the secret part of every token made, never to be echoed
}

func newEnv(t *testing.T, ttl time.Duration) *env {
	t.Helper()
	e := &env{t: t, caClock: &offsetClock{}, tokClock: &offsetClock{}, logs: &lockedBuffer{}}
	var err error
	e.ca, err = ca.Open(ca.Options{Dir: t.TempDir(), TrustDomain: td, Now: e.caClock.Now})
	if err != nil {
		t.Fatalf("ca.Open: %v", err)
	}
	e.st, err = bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	e.tokens = token.New(e.st, token.Options{Now: e.tokClock.Now})
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.iss = issuer.New(issuer.Options{CA: e.ca, Tokens: e.tokens, Store: e.st, TTL: ttl, Logger: log})

	key := newKey(t)
	chain, err := e.ca.SignServing(key.Public(), cpID, []string{"localhost"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, time.Hour)
	if err != nil {
		t.Fatalf("SignServing: %v", err)
	}
	e.srv = httptest.NewUnstartedServer(e.iss)
	e.srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{tlsCert(chain, key)},
		ClientAuth:   tls.RequestClientCert,
	}
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tlsCert(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, cert := range chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// csrSpec is what a test CSR asks for.
type csrSpec struct {
	uris   []string
	dns    []string
	emails []string
}

func newCSR(t testing.TB, key crypto.Signer, spec csrSpec) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "test"}, DNSNames: spec.dns, EmailAddresses: spec.emails}
	for _, u := range spec.uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// csrFor is a P-256 CSR with the single URI SAN id, and its key.
func csrFor(t testing.TB, id spiffeid.ID) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	return newCSR(t, key, csrSpec{uris: []string{id.String()}}), key
}

func reqBody(t testing.TB, workload string, csr []byte) []byte {
	t.Helper()
	b, err := json.Marshal(issuer.Request{Workload: workload, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newToken creates a join token and remembers its secret.
func (e *env) newToken(ns, sa string, ttl time.Duration) (string, token.Token) {
	e.t.Helper()
	s, tok, err := e.tokens.Create(context.Background(), ns, sa, ttl)
	if err != nil {
		e.t.Fatalf("token.Create: %v", err)
	}
	e.addSecret(secretOf(s))
	return s, tok
}

func (e *env) addSecret(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s)
}

func (e *env) allSecrets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.secrets...)
}

// secretOf is the secret part of weft1.<id>.<secret>.
func secretOf(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }

// meshCert is a certificate for id straight from the CA, with its chain:
// valid in the mesh, but never issued by the issuer, so no record names it
// and it renews nothing.
func (e *env) meshCert(id spiffeid.ID, ttl time.Duration) tls.Certificate {
	e.t.Helper()
	csr, key := csrFor(e.t, id)
	chain, err := e.ca.Sign(csr, id, ttl)
	if err != nil {
		e.t.Fatalf("ca.Sign(%s): %v", id, err)
	}
	return tlsCert(chain, key)
}

// enroll joins workload with a new join token for ns/sa, as a proxy's
// first start does: the certificate it gets (as a client certificate and
// as the chain) and the token.
func (e *env) enroll(ns, sa, workload string) (tls.Certificate, []*x509.Certificate, token.Token) {
	e.t.Helper()
	secret, tok := e.newToken(ns, sa, time.Hour)
	csr, key := csrFor(e.t, spiffeid.RequireFromSegments(td, "ns", ns, "sa", sa))
	chain, _ := e.issued(e.do(call{auth: "Bearer " + secret, body: reqBody(e.t, workload, csr)}))
	return tlsCert(chain, key), chain, tok
}

// renew asks for a certificate for id as workload, with cert as the proof.
func (e *env) renew(cert tls.Certificate, workload string, id spiffeid.ID) (reply, *ecdsa.PrivateKey) {
	e.t.Helper()
	csr, key := csrFor(e.t, id)
	return e.do(call{cert: &cert, body: reqBody(e.t, workload, csr)}), key
}

// renewed is renew that must succeed: the new certificate, as a client
// certificate and as the chain.
func (e *env) renewed(cert tls.Certificate, workload string, id spiffeid.ID) (tls.Certificate, []*x509.Certificate) {
	e.t.Helper()
	r, key := e.renew(cert, workload, id)
	chain, bundle := e.issued(r)
	checkLeaf(e.t, chain, bundle, id, key)
	return tlsCert(chain, key), chain
}

// plantRecord stores rec as if the issuer had written it.
func (e *env) plantRecord(rec issuer.Record) {
	e.t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Put(context.Background(), issuer.Prefix+rec.Namespace+"/"+rec.Workload, b, store.AnyRevision); err != nil {
		e.t.Fatal(err)
	}
}

// checkRefused checks that r is a refusal with the status code, logged with
// the reason, whose answer mentions every wantIn and no token secret.
func (e *env) checkRefused(r reply, code int, reason string, wantIn ...string) {
	e.t.Helper()
	if r.code != code {
		e.t.Errorf("status %d, want %d: %s", r.code, code, r.body)
	}
	body := string(r.body)
	if !strings.HasPrefix(body, "issuer: ") {
		e.t.Errorf("answer %q does not start with \"issuer: \"", body)
	}
	if !strings.HasPrefix(r.ctype, "text/plain") {
		e.t.Errorf("Content-Type %q, want text/plain", r.ctype)
	}
	for _, s := range wantIn {
		if !strings.Contains(body, s) {
			e.t.Errorf("answer %q does not mention %q", body, s)
		}
	}
	e.checkNoSecrets("answer", body)
	logs := e.logs.String()
	e.checkNoSecrets("log", logs)
	if !strings.Contains(logs, "reason="+reason) {
		e.t.Errorf("log does not give the reason %s:\n%s", reason, logs)
	}
}

// serial is how records spell a certificate's serial number.
func serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// call is one request to the issuer.
type call struct {
	method string // default POST
	path   string // default /v1/svid
	auth   string // Authorization header, if any
	cert   *tls.Certificate
	body   []byte
}

type reply struct {
	code  int
	ctype string
	body  []byte
}

func (e *env) client(cert *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	for _, r := range e.ca.Bundle() {
		roots.AddCert(r)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		// The issuer must be the control plane, as a proxy checks.
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != cpID.String() {
				return errors.New("server is not the control plane")
			}
			return nil
		},
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func (e *env) do(c call) reply {
	e.t.Helper()
	r, err := e.try(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// try is do for other goroutines than the test's: it reports, not fails.
func (e *env) try(c call) (reply, error) {
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = "/v1/svid"
	}
	req, err := http.NewRequest(c.method, e.srv.URL+c.path, bytes.NewReader(c.body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := e.client(c.cert).Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read body: %w", c.method, c.path, err)
	}
	return reply{code: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}, nil
}

// issued decodes a 200 answer into the chain and bundle.
func (e *env) issued(r reply) (chain, bundle []*x509.Certificate) {
	e.t.Helper()
	if r.code != http.StatusOK {
		e.t.Fatalf("status %d, want 200: %s", r.code, r.body)
	}
	if r.ctype != "application/json" {
		e.t.Errorf("Content-Type %q, want application/json", r.ctype)
	}
	var resp issuer.Response
	if err := json.Unmarshal(r.body, &resp); err != nil {
		e.t.Fatalf("decode answer: %v: %s", err, r.body)
	}
	parse := func(what string, ders [][]byte) []*x509.Certificate {
		var out []*x509.Certificate
		for _, d := range ders {
			c, err := x509.ParseCertificate(d)
			if err != nil {
				e.t.Fatalf("%s: %v", what, err)
			}
			out = append(out, c)
		}
		return out
	}
	chain, bundle = parse("chain", resp.Chain), parse("bundle", resp.Bundle)
	if len(chain) == 0 || len(bundle) == 0 {
		e.t.Fatalf("answer without chain (%d) or bundle (%d)", len(chain), len(bundle))
	}
	return chain, bundle
}

func (e *env) records() []issuer.Record {
	e.t.Helper()
	recs, err := issuer.Records(context.Background(), e.st)
	if err != nil {
		e.t.Fatalf("Records: %v", err)
	}
	return recs
}

// checkLeaf checks that chain is a certificate for exactly id, for key,
// that verifies against bundle.
func checkLeaf(t *testing.T, chain, bundle []*x509.Certificate, id spiffeid.ID, key *ecdsa.PrivateKey) {
	t.Helper()
	leaf := chain[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		t.Errorf("leaf URIs %v, want exactly [%s]", leaf.URIs, id)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("leaf has other names: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if key != nil && !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("leaf is not for the CSR's key")
	}
	got, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, bundle))
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if got != id {
		t.Errorf("verified ID %s, want %s", got, id)
	}
}

// checkRecord checks rec against the certificate leaf issued to workload
// via token or certificate, for the join token tokenID, renewing the
// certificate with the serial prevSerial ("" for none).
func checkRecord(t *testing.T, rec issuer.Record, workload, ns string, id spiffeid.ID, leaf, root *x509.Certificate, via, tokenID, prevSerial string) {
	t.Helper()
	want := issuer.Record{
		Workload:   workload,
		Namespace:  ns,
		SPIFFEID:   id.String(),
		Serial:     serial(leaf),
		NotBefore:  leaf.NotBefore,
		NotAfter:   leaf.NotAfter,
		Root:       ca.PinOf(root),
		Via:        via,
		TokenID:    tokenID,
		PrevSerial: prevSerial,
	}
	if !rec.NotBefore.Equal(want.NotBefore) || !rec.NotAfter.Equal(want.NotAfter) {
		t.Errorf("record validity %s..%s, want %s..%s", rec.NotBefore, rec.NotAfter, want.NotBefore, want.NotAfter)
	}
	rec.NotBefore, rec.NotAfter = want.NotBefore, want.NotAfter
	if rec != want {
		t.Errorf("record\n got %+v\nwant %+v", rec, want)
	}
}

func checkStats(t *testing.T, iss *issuer.Issuer, wantIssued uint64, wantRefused map[string]uint64) {
	t.Helper()
	issued, refused := iss.Stats()
	if issued != wantIssued {
		t.Errorf("Stats issued = %d, want %d", issued, wantIssued)
	}
	if len(refused) == 0 && len(wantRefused) == 0 {
		return
	}
	if !reflect.DeepEqual(refused, wantRefused) {
		t.Errorf("Stats refused = %v, want %v", refused, wantRefused)
	}
}

func (e *env) checkNoSecrets(where string, text string) {
	e.t.Helper()
	for _, s := range e.allSecrets() {
		if strings.Contains(text, s) {
			e.t.Errorf("%s echoes a token secret: %q", where, text)
		}
	}
}

func TestIssueWithToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ns, sa, workload string
	}{
		{"plain", "default", "web", "web-7d9f8c"},
		{"dotted identity", "shop", "api.v2", "api"},
		{"workload is a subdomain", "default", "web", "web.canary.eu-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, time.Hour)
			secret, tok := e.newToken(tc.ns, tc.sa, time.Hour)
			id := spiffeid.RequireFromSegments(td, "ns", tc.ns, "sa", tc.sa)
			csr, key := csrFor(t, id)
			before := time.Now()
			r := e.do(call{auth: "Bearer " + secret, body: reqBody(t, tc.workload, csr)})
			chain, bundle := e.issued(r)
			e.checkNoSecrets("answer", string(r.body))

			checkLeaf(t, chain, bundle, id, key)
			if len(chain) != 2 {
				t.Errorf("chain has %d certificates, want leaf and intermediate", len(chain))
			}
			if !reflect.DeepEqual(bundle, e.ca.Bundle()) {
				t.Error("answer's bundle is not the CA's")
			}
			for _, c := range chain {
				if c.Equal(bundle[0]) {
					t.Error("the chain holds the root")
				}
			}
			// Options.TTL sets the lifetime.
			if life := chain[0].NotAfter.Sub(before); life < 59*time.Minute || life > time.Hour+time.Minute {
				t.Errorf("leaf lives %s from now, want about the issuer's TTL of 1h", life)
			}
			root, ok := e.ca.RootOf(chain[0])
			if !ok || !root.Equal(bundle[0]) {
				t.Fatalf("RootOf(leaf) = %v, %v", root, ok)
			}

			recs := e.records()
			if len(recs) != 1 {
				t.Fatalf("Records = %+v, want one", recs)
			}
			checkRecord(t, recs[0], tc.workload, tc.ns, id, chain[0], root, "token", tok.ID, "")
			if recs[0].Root != e.ca.Pin() {
				t.Errorf("record root %s, want the issuing pin %s", recs[0].Root, e.ca.Pin())
			}
			kv, err := e.st.Get(context.Background(), issuer.Prefix+tc.ns+"/"+tc.workload)
			if err != nil {
				t.Fatalf("record not under %s%s/%s: %v", issuer.Prefix, tc.ns, tc.workload, err)
			}
			e.checkNoSecrets("record", string(kv.Value))
			checkStats(t, e.iss, 1, nil)
			e.checkNoSecrets("log", e.logs.String())
		})
	}
}

func TestDefaultTTLIsTheCAs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	secret, _ := e.newToken("default", "web", time.Hour)
	csr, _ := csrFor(t, webID)
	before := time.Now()
	chain, _ := e.issued(e.do(call{auth: "Bearer " + secret, body: reqBody(t, "web", csr)}))
	if life := chain[0].NotAfter.Sub(before); life < ca.DefaultWorkloadTTL-time.Minute || life > ca.DefaultWorkloadTTL+time.Minute {
		t.Errorf("leaf lives %s from now, want the CA's default %s", life, ca.DefaultWorkloadTTL)
	}
}

func TestRenewWithCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	secret, tok := e.newToken("default", "web", time.Hour)
	csr, key := csrFor(t, webID)
	first, _ := e.issued(e.do(call{auth: "Bearer " + secret, body: reqBody(t, "web", csr)}))

	// The certificate is the proof from now on: no token in the request.
	client := tlsCert(first, key)
	csr2, key2 := csrFor(t, webID)
	r := e.do(call{cert: &client, body: reqBody(t, "web", csr2)})
	chain, bundle := e.issued(r)
	e.checkNoSecrets("answer", string(r.body))
	checkLeaf(t, chain, bundle, webID, key2)
	if chain[0].SerialNumber.Cmp(first[0].SerialNumber) == 0 {
		t.Error("renewal returned the same serial")
	}

	recs := e.records()
	if len(recs) != 1 {
		t.Fatalf("Records = %+v, want the renewal to replace the first record", recs)
	}
	root, _ := e.ca.RootOf(chain[0])
	// The renewal keeps the join token and remembers the serial it replaced.
	checkRecord(t, recs[0], "web", "default", webID, chain[0], root, "certificate", tok.ID, serial(first[0]))

	// And the renewed certificate renews in turn, after the token's own
	// lifetime is over: that is for joining, not for staying.
	e.tokClock.Set(2 * time.Hour)
	_, third := e.renewed(tlsCert(chain, key2), "web", webID)
	recs = e.records()
	if len(recs) != 1 {
		t.Fatalf("Records = %+v, want one", recs)
	}
	checkRecord(t, recs[0], "web", "default", webID, third[0], root, "certificate", tok.ID, serial(chain[0]))
	checkStats(t, e.iss, 3, nil)
	e.checkNoSecrets("log", e.logs.String())
}

func TestCertificateTakesPrecedenceOverToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	web, _, webTok := e.enroll("default", "web", "web")
	secret, _ := e.newToken("default", "db", time.Hour)

	// With both, the certificate says who is asking: it does not grant db,
	csr, _ := csrFor(t, dbID)
	r := e.do(call{auth: "Bearer " + secret, cert: &web, body: reqBody(t, "web", csr)})
	e.checkRefused(r, http.StatusForbidden, "identity_not_granted", dbID.String(), webID.String())
	// nor the workload db, though the token would.
	csr, _ = csrFor(t, dbID)
	r = e.do(call{auth: "Bearer " + secret, cert: &web, body: reqBody(t, "db", csr)})
	e.checkRefused(r, http.StatusForbidden, "not_current_certificate", "default/db")
	// A certificate that is not the current one is not rescued by a valid
	// token either.
	stale := e.meshCert(webID, time.Hour)
	webSecret, _ := e.newToken("default", "web", time.Hour)
	csr, _ = csrFor(t, webID)
	r = e.do(call{auth: "Bearer " + webSecret, cert: &stale, body: reqBody(t, "web", csr)})
	e.checkRefused(r, http.StatusForbidden, "not_current_certificate", "default/web")

	csr, _ = csrFor(t, webID)
	chain, _ := e.issued(e.do(call{auth: "Bearer " + secret, cert: &web, body: reqBody(t, "web", csr)}))
	recs := e.records()
	if len(recs) != 1 || recs[0].Via != "certificate" || recs[0].SPIFFEID != webID.String() {
		t.Fatalf("Records = %+v, want web via certificate", recs)
	}
	// The record keeps the token the workload joined with, not the one
	// that came along.
	if recs[0].TokenID != webTok.ID || recs[0].Serial != serial(chain[0]) || recs[0].PrevSerial != serial(web.Leaf) {
		t.Errorf("record %+v, want token %s, serial %s, previous %s", recs[0], webTok.ID, serial(chain[0]), serial(web.Leaf))
	}
	checkStats(t, e.iss, 2, map[string]uint64{"identity_not_granted": 1, "not_current_certificate": 2})
	e.checkNoSecrets("log", e.logs.String())
}

func TestRenewAcrossRootRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	old, oldChain, tok := e.enroll("default", "web", "web")
	oldRoot := e.ca.Bundle()[0]
	if err := e.ca.Rotate(); err != nil {
		t.Fatal(err)
	}
	csr, key := csrFor(t, webID)
	chain, bundle := e.issued(e.do(call{cert: &old, body: reqBody(t, "web", csr)}))
	if len(bundle) != 2 {
		t.Fatalf("bundle has %d roots during a rotation, want 2", len(bundle))
	}
	checkLeaf(t, chain, bundle, webID, key)
	newRoot := e.ca.Bundle()[1]
	recs := e.records()
	if len(recs) != 1 {
		t.Fatalf("Records = %+v", recs)
	}
	checkRecord(t, recs[0], "web", "default", webID, chain[0], newRoot, "certificate", tok.ID, serial(oldChain[0]))
	if recs[0].Root == ca.PinOf(oldRoot) || recs[0].Root != e.ca.Pin() {
		t.Errorf("record root %s, want the new issuing root %s", recs[0].Root, e.ca.Pin())
	}
	checkStats(t, e.iss, 2, nil)
}

// A certificate older than the previous one renews nothing, even though it
// is still valid: a stolen or forgotten copy cannot keep a workload alive.
func TestOlderCertificateRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	c1, _, _ := e.enroll("default", "web", "web")
	c2, _ := e.renewed(c1, "web", webID)
	c3, _ := e.renewed(c2, "web", webID)
	before := e.records()
	if len(before) != 1 || before[0].Serial != serial(c3.Leaf) || before[0].PrevSerial != serial(c2.Leaf) {
		t.Fatalf("Records = %+v, want current %s, previous %s", before, serial(c3.Leaf), serial(c2.Leaf))
	}

	r, _ := e.renew(c1, "web", webID)
	e.checkRefused(r, http.StatusForbidden, "not_current_certificate", "default/web", "join again")
	if after := e.records(); !reflect.DeepEqual(after, before) {
		t.Errorf("refused renewal changed the records:\n got %+v\nwant %+v", after, before)
	}
	checkStats(t, e.iss, 3, map[string]uint64{"not_current_certificate": 1})

	// The current certificate still renews.
	e.renewed(c3, "web", webID)
	checkStats(t, e.iss, 4, map[string]uint64{"not_current_certificate": 1})
}

// A renewal whose answer was lost may be retried with the certificate it
// was made with, once.
func TestPreviousCertificateRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	c1, _, tok := e.enroll("default", "web", "web")
	// The answer to this renewal never reaches the proxy: it has c1 only.
	_, lost := e.renewed(c1, "web", webID)

	c3, third := e.renewed(c1, "web", webID)
	if third[0].SerialNumber.Cmp(lost[0].SerialNumber) == 0 {
		t.Error("the retry returned the lost certificate's serial")
	}
	recs := e.records()
	if len(recs) != 1 {
		t.Fatalf("Records = %+v, want one", recs)
	}
	root, _ := e.ca.RootOf(third[0])
	checkRecord(t, recs[0], "web", "default", webID, third[0], root, "certificate", tok.ID, serial(lost[0]))

	// Once: c1 is now older than the previous certificate.
	r, _ := e.renew(c1, "web", webID)
	e.checkRefused(r, http.StatusForbidden, "not_current_certificate", "default/web")
	if after := e.records(); !reflect.DeepEqual(after, recs) {
		t.Errorf("refused renewal changed the records:\n got %+v\nwant %+v", after, recs)
	}

	// The certificate from the retry renews as usual.
	_, fourth := e.renewed(c3, "web", webID)
	recs = e.records()
	if len(recs) != 1 {
		t.Fatalf("Records = %+v, want one", recs)
	}
	checkRecord(t, recs[0], "web", "default", webID, fourth[0], root, "certificate", tok.ID, serial(third[0]))
	checkStats(t, e.iss, 4, map[string]uint64{"not_current_certificate": 1})
}

// A certificate renews only the workload it was issued to, even when
// another workload has the same identity.
func TestCertificateOfAnotherWorkload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	a, _, _ := e.enroll("default", "web", "web-a")
	b, _, _ := e.enroll("default", "web", "web-b")
	db, _, _ := e.enroll("default", "db", "db")
	prod, _, _ := e.enroll("prod", "web", "web-a")
	before := e.records()
	if len(before) != 4 {
		t.Fatalf("Records = %+v, want four", before)
	}

	for _, tc := range []struct {
		name     string
		cert     tls.Certificate
		id       spiffeid.ID
		workload string
		wantIn   string
	}{
		{"a as b", a, webID, "web-b", "default/web-b"},
		{"b as a", b, webID, "web-a", "default/web-a"},
		{"a as a workload that never joined", a, webID, "web-c", "default/web-c"},
		{"another identity's", db, dbID, "web-a", "default/web-a"},
		{"another namespace's", prod, prodWebID, "web-b", "prod/web-b"},
	} {
		t.Log(tc.name)
		r, _ := e.renew(tc.cert, tc.workload, tc.id)
		e.checkRefused(r, http.StatusForbidden, "not_current_certificate", tc.wantIn)
	}
	if after := e.records(); !reflect.DeepEqual(after, before) {
		t.Errorf("refused renewals changed the records:\n got %+v\nwant %+v", after, before)
	}
	checkStats(t, e.iss, 4, map[string]uint64{"not_current_certificate": 5})

	// Each renews itself.
	e.renewed(a, "web-a", webID)
	e.renewed(b, "web-b", webID)
	e.renewed(prod, "web-a", prodWebID)
	checkStats(t, e.iss, 7, map[string]uint64{"not_current_certificate": 5})
}

// Revoking the join token a workload enrolled with evicts it at its next
// renewal; joining again with a new token brings it back.
func TestRevokedTokenStopsRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	c1, _, tok := e.enroll("default", "web", "web")
	c2, _ := e.renewed(c1, "web", webID)
	if err := e.tokens.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	before := e.records()

	// Neither the current certificate nor the previous one renews.
	for _, c := range []tls.Certificate{c2, c1} {
		r, _ := e.renew(c, "web", webID)
		e.checkRefused(r, http.StatusUnauthorized, "token_revoked", "revoked", "default/web")
	}
	if after := e.records(); !reflect.DeepEqual(after, before) {
		t.Errorf("refused renewals changed the records:\n got %+v\nwant %+v", after, before)
	}
	checkStats(t, e.iss, 2, map[string]uint64{"token_revoked": 2})

	// Joining again with a new token starts over.
	c3, third, tok2 := e.enroll("default", "web", "web")
	_, fourth := e.renewed(c3, "web", webID)
	recs := e.records()
	if len(recs) != 1 {
		t.Fatalf("Records = %+v, want one", recs)
	}
	root, _ := e.ca.RootOf(fourth[0])
	checkRecord(t, recs[0], "web", "default", webID, fourth[0], root, "certificate", tok2.ID, serial(third[0]))
	// The certificates of the revoked enrolment stay out.
	r, _ := e.renew(c2, "web", webID)
	e.checkRefused(r, http.StatusForbidden, "not_current_certificate", "default/web")
	checkStats(t, e.iss, 4, map[string]uint64{"token_revoked": 2, "not_current_certificate": 1})
}

// No token, and so no workload, may have the control plane's own identity.
func TestReservedIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	if id := spiffeid.RequireFromSegments(td, "ns", token.ReservedNamespace, "sa", token.ReservedIdentity); id != cpID {
		t.Fatalf("the reserved identity is %s, want the control plane's %s", id, cpID)
	}
	s, tok, err := e.tokens.Create(ctx, token.ReservedNamespace, token.ReservedIdentity, time.Hour)
	if err == nil {
		e.addSecret(secretOf(s))
		t.Fatalf("token.Create(%s/%s) = %+v, want an error", token.ReservedNamespace, token.ReservedIdentity, tok)
	}
	if s != "" || tok != (token.Token{}) {
		t.Errorf("refused token.Create returned %q, %+v", s, tok)
	}
	if toks, err := e.tokens.List(ctx); err != nil || len(toks) != 0 {
		t.Errorf("tokens after a refused Create: %+v, %v", toks, err)
	}

	// Only that pair is reserved.
	e.enroll(token.ReservedNamespace, "metrics", "metrics")
	e.enroll("default", token.ReservedIdentity, "control-plane")
	checkStats(t, e.iss, 2, nil)
}

// The issuer's refusals. Every case runs against a fresh issuer, so that
// the counters tell exactly which refusal happened.
func TestRefusals(t *testing.T) {
	t.Parallel()
	type tc struct {
		name    string
		prepare func(t *testing.T, e *env) call
		issued  uint64 // certificates issued by prepare
		code    int
		reason  string
		wantIn  []string // substrings of the answer
	}
	withToken := func(ns, sa string, id spiffeid.ID, spec func(id spiffeid.ID) csrSpec) func(*testing.T, *env) call {
		return func(t *testing.T, e *env) call {
			secret, _ := e.newToken(ns, sa, time.Hour)
			s := csrSpec{uris: []string{id.String()}}
			if spec != nil {
				s = spec(id)
			}
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", newCSR(t, newKey(t), s))}
		}
	}
	// withCert presents a certificate for certID that the issuer never
	// issued.
	withCert := func(certID, csrID spiffeid.ID) func(*testing.T, *env) call {
		return func(t *testing.T, e *env) call {
			c := e.meshCert(certID, time.Hour)
			csr, _ := csrFor(t, csrID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}
	}
	// withEnrolled presents the current certificate of default/web's
	// workload web.
	withEnrolled := func(csrID spiffeid.ID) func(*testing.T, *env) call {
		return func(t *testing.T, e *env) call {
			c, _, _ := e.enroll("default", "web", "web")
			csr, _ := csrFor(t, csrID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}
	}
	withAuth := func(auth string) func(*testing.T, *env) call {
		return func(t *testing.T, e *env) call {
			csr, _ := csrFor(t, webID)
			return call{auth: auth, body: reqBody(t, "web", csr)}
		}
	}
	withBody := func(body string) func(*testing.T, *env) call {
		return func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			return call{auth: "Bearer " + secret, body: []byte(body)}
		}
	}
	validCSR := func(t *testing.T) []byte { c, _ := csrFor(t, webID); return c }

	cases := []tc{
		// The CSR asks for more than the proof grants.
		{name: "token: CSR for another identity", prepare: withToken("default", "web", dbID, nil),
			code: 403, reason: "identity_not_granted", wantIn: []string{dbID.String(), webID.String()}},
		{name: "token: CSR for another namespace", prepare: withToken("default", "web", prodWebID, nil),
			code: 403, reason: "identity_not_granted", wantIn: []string{prodWebID.String(), webID.String()}},
		{name: "token: CSR for another trust domain", prepare: withToken("default", "web", spiffeid.RequireFromString("spiffe://evil.example/ns/default/sa/web"), nil),
			code: 403, reason: "identity_not_granted", wantIn: []string{"spiffe://evil.example/ns/default/sa/web", webID.String()}},
		{name: "token: CSR without URI SAN", prepare: withToken("default", "web", webID, func(spiffeid.ID) csrSpec { return csrSpec{} }),
			code: 403, reason: "identity_not_granted", wantIn: []string{"none", webID.String()}},
		{name: "token: CSR with two URI SANs", prepare: withToken("default", "web", webID, func(id spiffeid.ID) csrSpec {
			return csrSpec{uris: []string{id.String(), dbID.String()}}
		}), code: 403, reason: "identity_not_granted", wantIn: []string{webID.String()}},
		{name: "certificate: CSR for another identity", prepare: withEnrolled(dbID), issued: 1,
			code: 403, reason: "identity_not_granted", wantIn: []string{dbID.String(), webID.String()}},
		{name: "certificate: CSR for another namespace", prepare: withEnrolled(prodWebID), issued: 1,
			code: 403, reason: "identity_not_granted", wantIn: []string{prodWebID.String(), webID.String()}},
		{name: "token: CSR for the control plane", prepare: withToken("default", "web", cpID, nil),
			code: 403, reason: "identity_not_granted", wantIn: []string{cpID.String(), webID.String()}},

		// A certificate that is not the workload's current or previous one.
		{name: "certificate the issuer never issued", prepare: withCert(webID, webID),
			code: 403, reason: "not_current_certificate", wantIn: []string{"default/web", "join again"}},
		{name: "certificate of the workload's previous enrolment", prepare: func(t *testing.T, e *env) call {
			c, _, _ := e.enroll("default", "web", "web")
			e.enroll("default", "web", "web") // joins again: the record forgets c
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, issued: 2, code: 403, reason: "not_current_certificate", wantIn: []string{"default/web"}},
		{name: "record with the serial but another identity", prepare: func(t *testing.T, e *env) call {
			c := e.meshCert(webID, time.Hour)
			e.plantRecord(issuer.Record{Workload: "web", Namespace: "default", SPIFFEID: dbID.String(), Serial: serial(c.Leaf), Via: "token"})
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, code: 403, reason: "not_current_certificate", wantIn: []string{"default/web"}},
		{name: "corrupt record", prepare: func(t *testing.T, e *env) call {
			c, _, _ := e.enroll("default", "web", "web")
			if _, err := e.st.Put(context.Background(), issuer.Prefix+"default/web", []byte("not json"), store.AnyRevision); err != nil {
				t.Fatal(err)
			}
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, issued: 1, code: 403, reason: "not_current_certificate", wantIn: []string{"default/web"}},

		// The join token of a current certificate is gone.
		{name: "certificate: join token revoked", prepare: func(t *testing.T, e *env) call {
			c, _, tok := e.enroll("default", "web", "web")
			if err := e.tokens.Revoke(context.Background(), tok.ID); err != nil {
				t.Fatal(err)
			}
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, issued: 1, code: 401, reason: "token_revoked", wantIn: []string{"revoked", "default/web"}},
		{name: "certificate: join token deleted", prepare: func(t *testing.T, e *env) call {
			c, _, tok := e.enroll("default", "web", "web")
			if _, err := e.st.Delete(context.Background(), token.Prefix+tok.ID); err != nil {
				t.Fatal(err)
			}
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, issued: 1, code: 401, reason: "token_revoked", wantIn: []string{"revoked", "default/web"}},

		// The control plane's own identity.
		{name: "token for the control plane, stored before it was reserved", prepare: func(t *testing.T, e *env) call {
			ctx := context.Background()
			secret, tok := e.newToken("default", "web", time.Hour)
			kv, err := e.st.Get(ctx, token.Prefix+tok.ID)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				t.Fatal(err)
			}
			m["namespace"], m["identity"] = token.ReservedNamespace, token.ReservedIdentity
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.st.Put(ctx, token.Prefix+tok.ID, b, store.AnyRevision); err != nil {
				t.Fatal(err)
			}
			if got, err := e.tokens.Validate(ctx, secret); err != nil || got.Namespace != token.ReservedNamespace || got.Identity != token.ReservedIdentity {
				t.Fatalf("forged token validates as %+v, %v", got, err)
			}
			csr, _ := csrFor(t, cpID)
			return call{auth: "Bearer " + secret, body: reqBody(t, "control-plane", csr)}
		}, code: 403, reason: "reserved_identity", wantIn: []string{"control plane"}},
		{name: "certificate of the control plane, never issued", prepare: func(t *testing.T, e *env) call {
			c := e.meshCert(cpID, time.Hour)
			csr, _ := csrFor(t, cpID)
			return call{cert: &c, body: reqBody(t, "control-plane", csr)}
		}, code: 403, reason: "not_current_certificate", wantIn: []string{"weft-system/control-plane"}},
		{name: "certificate of the control plane, with a record", prepare: func(t *testing.T, e *env) call {
			c := e.meshCert(cpID, time.Hour)
			e.plantRecord(issuer.Record{Workload: "control-plane", Namespace: token.ReservedNamespace, SPIFFEID: cpID.String(), Serial: serial(c.Leaf), Via: "token"})
			csr, _ := csrFor(t, cpID)
			return call{cert: &c, body: reqBody(t, "control-plane", csr)}
		}, code: 403, reason: "reserved_identity", wantIn: []string{"control plane"}},

		// The right identity, but a CSR the CA refuses.
		{name: "CSR with an extra DNS SAN", prepare: withToken("default", "web", webID, func(id spiffeid.ID) csrSpec {
			return csrSpec{uris: []string{id.String()}, dns: []string{"web.default.svc"}}
		}), code: 403, reason: "csr_refused", wantIn: []string{"DNS", "web.default.svc"}},
		{name: "CSR with an email SAN", prepare: withToken("default", "web", webID, func(id spiffeid.ID) csrSpec {
			return csrSpec{uris: []string{id.String()}, emails: []string{"web@example.com"}}
		}), code: 403, reason: "csr_refused", wantIn: []string{"email"}},
		{name: "CSR with a bad signature", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			csr := validCSR(t)
			csr[len(csr)-1] ^= 0x01 // the last byte of the signature's s
			if _, err := x509.ParseCertificateRequest(csr); err != nil {
				t.Fatalf("tampered CSR should still parse: %v", err)
			}
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", csr)}
		}, code: 403, reason: "csr_refused", wantIn: []string{"signature"}},
		{name: "CSR with a weak RSA key", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			k, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", newCSR(t, k, csrSpec{uris: []string{webID.String()}}))}
		}, code: 403, reason: "csr_refused", wantIn: []string{"RSA"}},

		// Token problems.
		{name: "revoked token", prepare: func(t *testing.T, e *env) call {
			secret, tok := e.newToken("default", "web", time.Hour)
			if err := e.tokens.Revoke(context.Background(), tok.ID); err != nil {
				t.Fatal(err)
			}
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", validCSR(t))}
		}, code: 401, reason: "token_revoked", wantIn: []string{"revoked"}},
		{name: "expired token", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			e.tokClock.Set(time.Hour + time.Second)
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", validCSR(t))}
		}, code: 401, reason: "token_expired", wantIn: []string{"expired"}},
		{name: "token at the end of its lifetime", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			e.tokClock.Set(time.Hour)
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", validCSR(t))}
		}, code: 401, reason: "token_expired", wantIn: []string{"expired"}},
		{name: "unknown token", prepare: func(t *testing.T, e *env) call {
			// A well-formed token from another control plane.
			other := token.New(mustBolt(t), token.Options{})
			s, _, err := other.Create(context.Background(), "default", "web", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			e.addSecret(secretOf(s))
			return call{auth: "Bearer " + s, body: reqBody(t, "web", validCSR(t))}
		}, code: 401, reason: "token_unknown", wantIn: []string{"unknown"}},
		{name: "deleted token", prepare: func(t *testing.T, e *env) call {
			secret, tok := e.newToken("default", "web", time.Hour)
			if _, err := e.st.Delete(context.Background(), token.Prefix+tok.ID); err != nil {
				t.Fatal(err)
			}
			return call{auth: "Bearer " + secret, body: reqBody(t, "web", validCSR(t))}
		}, code: 401, reason: "token_unknown", wantIn: []string{"unknown"}},
		{name: "malformed token", prepare: func(t *testing.T, e *env) call {
			e.addSecret("not-a-join-token-at-all")
			return withAuth("Bearer not-a-join-token-at-all")(t, e)
		}, code: 401, reason: "token_malformed", wantIn: []string{"malformed"}},
		{name: "token of another version", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			return withAuth("Bearer weft2"+strings.TrimPrefix(secret, "weft1"))(t, e)
		}, code: 401, reason: "token_malformed", wantIn: []string{"malformed"}},
		{name: "wrong secret", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			real := secretOf(secret)
			wrong := strings.Repeat("a", len(real))
			if wrong == real {
				wrong = strings.Repeat("b", len(real))
			}
			e.addSecret(wrong)
			return withAuth("Bearer "+strings.TrimSuffix(secret, real)+wrong)(t, e)
		}, code: 401, reason: "token_mismatch", wantIn: []string{"mismatch"}},

		// No or bad credentials.
		{name: "no credentials", prepare: withAuth(""),
			code: 401, reason: "no_credentials", wantIn: []string{"join token", "certificate"}},
		{name: "empty bearer", prepare: withAuth("Bearer "),
			code: 401, reason: "no_credentials", wantIn: []string{"join token"}},
		{name: "basic auth", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			return withAuth("Basic "+secret)(t, e)
		}, code: 401, reason: "no_credentials", wantIn: []string{"join token"}},
		{name: "client certificate from another CA", prepare: func(t *testing.T, e *env) call {
			c := selfSigned(t, webID)
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, code: 401, reason: "bad_client_certificate", wantIn: []string{"verify"}},
		{name: "client certificate from another CA, with a valid token", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			c := selfSigned(t, webID)
			csr, _ := csrFor(t, webID)
			return call{auth: "Bearer " + secret, cert: &c, body: reqBody(t, "web", csr)}
		}, code: 401, reason: "bad_client_certificate", wantIn: []string{"verify"}},
		{name: "expired client certificate", prepare: func(t *testing.T, e *env) call {
			// The workload's current certificate, but two days old.
			e.caClock.Set(-48 * time.Hour)
			c, _, _ := e.enroll("default", "web", "web")
			e.caClock.Set(0)
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, issued: 1, code: 401, reason: "bad_client_certificate", wantIn: []string{"expired"}},
		{name: "client certificate without its intermediate", prepare: func(t *testing.T, e *env) call {
			c, _, _ := e.enroll("default", "web", "web")
			c.Certificate = c.Certificate[:1]
			csr, _ := csrFor(t, webID)
			return call{cert: &c, body: reqBody(t, "web", csr)}
		}, issued: 1, code: 401, reason: "bad_client_certificate", wantIn: []string{"verify"}},
		{name: "client certificate of a non-workload", prepare: withCert(notWorkID, notWorkID),
			code: 403, reason: "not_a_workload", wantIn: []string{notWorkID.String()}},
		{name: "client certificate with a too deep path", prepare: withCert(deepWorkID, webID),
			code: 403, reason: "not_a_workload", wantIn: []string{deepWorkID.String()}},

		// Bad requests.
		{name: "bad JSON", prepare: withBody(`{"workload": "web", "csr": `),
			code: 400, reason: "bad_request", wantIn: []string{"JSON"}},
		{name: "not an object", prepare: withBody(`["web"]`),
			code: 400, reason: "bad_request", wantIn: []string{"JSON"}},
		{name: "empty body", prepare: withBody(``),
			code: 400, reason: "bad_request", wantIn: []string{"JSON"}},
		{name: "missing csr", prepare: withBody(`{"workload": "web"}`),
			code: 400, reason: "bad_request", wantIn: []string{"csr"}},
		{name: "csr not base64", prepare: withBody(`{"workload": "web", "csr": "%%%"}`),
			code: 400, reason: "bad_request", wantIn: []string{"csr"}},
		{name: "missing workload", prepare: func(t *testing.T, e *env) call {
			return withBody(string(reqBody(t, "", validCSR(t))))(t, e)
		}, code: 400, reason: "bad_request", wantIn: []string{"workload"}},
		{name: "bad workload name", prepare: func(t *testing.T, e *env) call {
			return withBody(string(reqBody(t, "Web_1", validCSR(t))))(t, e)
		}, code: 400, reason: "bad_request", wantIn: []string{"workload"}},
		{name: "workload name with a slash", prepare: func(t *testing.T, e *env) call {
			return withBody(string(reqBody(t, "web/../../tokens/x", validCSR(t))))(t, e)
		}, code: 400, reason: "bad_request", wantIn: []string{"workload"}},
		{name: "bad request checked before credentials", prepare: func(t *testing.T, e *env) call {
			return call{body: []byte(`{`)}
		}, code: 400, reason: "bad_request", wantIn: []string{"JSON"}},
		{name: "garbage CSR", prepare: withBody(`{"workload": "web", "csr": "Z2FyYmFnZQ=="}`),
			code: 400, reason: "bad_csr", wantIn: []string{"csr"}},
		{name: "body too large", prepare: func(t *testing.T, e *env) call {
			secret, _ := e.newToken("default", "web", time.Hour)
			body := `{"workload": "web", "csr": "` + strings.Repeat("A", 65<<10) + `"}`
			return call{auth: "Bearer " + secret, body: []byte(body)}
		}, code: 400, reason: "bad_request", wantIn: []string{"too large"}},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, time.Hour)
			req := c.prepare(t, e)
			before := e.records()
			r := e.do(req)
			e.checkRefused(r, c.code, c.reason, c.wantIn...)
			checkStats(t, e.iss, c.issued, map[string]uint64{c.reason: 1})
			if after := e.records(); !reflect.DeepEqual(after, before) {
				t.Errorf("refused request changed the records:\n got %+v\nwant %+v", after, before)
			}
		})
	}
}

func mustBolt(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "other"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// selfSigned is a workload-shaped certificate for id from a CA of its own.
func selfSigned(t *testing.T, id spiffeid.ID) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "web"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tlsCert([]*x509.Certificate{leaf}, key)
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	secret, _ := e.newToken("default", "web", time.Hour)
	csr, _ := csrFor(t, webID)
	body := reqBody(t, "web", csr)
	for _, c := range []call{
		{method: http.MethodGet},
		{method: http.MethodPut},
		{method: http.MethodDelete},
		{method: http.MethodPatch},
		{method: http.MethodPost, path: "/v1/svid/"},
		{method: http.MethodPost, path: "/v1/svids"},
		{method: http.MethodPost, path: "/v1/svid/web"},
		{method: http.MethodPost, path: "/"},
		{method: http.MethodGet, path: "/v1/certs"},
	} {
		c.auth, c.body = "Bearer "+secret, body
		if r := e.do(c); r.code != http.StatusNotFound {
			t.Errorf("%s %s: status %d, want 404: %s", c.method, c.path, r.code, r.body)
		}
	}
	checkStats(t, e.iss, 0, nil)
	if recs := e.records(); len(recs) != 0 {
		t.Errorf("Records = %+v", recs)
	}
}

func TestRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	ctx := context.Background()
	if recs, err := issuer.Records(ctx, e.st); err != nil || len(recs) != 0 {
		t.Fatalf("Records of an empty store = %v, %v", recs, err)
	}
	issue := func(ns, sa, workload string) []*x509.Certificate {
		t.Helper()
		secret, _ := e.newToken(ns, sa, time.Hour)
		csr, _ := csrFor(t, spiffeid.RequireFromSegments(td, "ns", ns, "sa", sa))
		chain, _ := e.issued(e.do(call{auth: "Bearer " + secret, body: reqBody(t, workload, csr)}))
		return chain
	}
	issue("shop", "catalog", "catalog")
	issue("default", "web", "web-b")
	issue("default", "web", "web-a")
	last := issue("shop", "catalog", "catalog") // replaces the first
	// Not a record: Records skips it.
	if _, err := e.st.Put(ctx, issuer.Prefix+"default/zz", []byte("not json"), store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	// Outside the prefix: not listed.
	if _, err := e.st.Put(ctx, "/other/x", []byte(`{"workload":"x"}`), store.AnyRevision); err != nil {
		t.Fatal(err)
	}

	recs := e.records()
	var got []string
	for _, r := range recs {
		got = append(got, r.Namespace+"/"+r.Workload)
	}
	want := []string{"default/web-a", "default/web-b", "shop/catalog"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Records = %v, want %v", got, want)
	}
	if recs[2].Serial != last[0].SerialNumber.Text(16) {
		t.Errorf("shop/catalog record has serial %s, want the last issue's %s", recs[2].Serial, last[0].SerialNumber.Text(16))
	}
	for _, r := range recs {
		if r.Via != "token" || r.Root != e.ca.Pin() {
			t.Errorf("record %+v: want via token, root %s", r, e.ca.Pin())
		}
	}
	checkStats(t, e.iss, 4, nil)

	// Records reports a store that fails.
	st := mustBolt(t)
	_ = st.Close()
	if _, err := issuer.Records(ctx, st); err == nil {
		t.Error("Records of a closed store: no error")
	}
}

func TestConcurrentIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	const n = 8
	secrets := make([]string, n)
	for i := range n {
		secrets[i], _ = e.newToken("default", "web", time.Hour)
	}
	var wg sync.WaitGroup
	codes := make([]int, 2*n)
	errs := make([]error, 2*n)
	for i := range n {
		csr, _ := csrFor(t, webID)
		bad, _ := csrFor(t, dbID)
		good := call{auth: "Bearer " + secrets[i], body: reqBody(t, "web-"+string(rune('a'+i)), csr)}
		refused := call{auth: "Bearer " + secrets[i], body: reqBody(t, "db", bad)}
		wg.Add(2)
		run := func(j int, c call) {
			defer wg.Done()
			r, err := e.try(c)
			codes[j], errs[j] = r.code, err
		}
		go run(2*i, good)
		go run(2*i+1, refused)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, c := range codes {
		if want := []int{200, 403}[i%2]; c != want {
			t.Errorf("request %d: status %d, want %d", i, c, want)
		}
	}
	checkStats(t, e.iss, n, map[string]uint64{"identity_not_granted": n})
	if recs := e.records(); len(recs) != n {
		t.Errorf("Records has %d entries, want %d", len(recs), n)
	}
}

func TestStatsIsACopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	e.do(call{body: reqBody(t, "web", []byte{1})})
	_, refused := e.iss.Stats()
	refused["no_credentials"] = 100
	refused["made_up"] = 1
	checkStats(t, e.iss, 0, map[string]uint64{"no_credentials": 1})
}

func TestNewWithoutLogger(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	iss := issuer.New(issuer.Options{CA: e.ca, Tokens: e.tokens, Store: e.st})
	rec := httptest.NewRecorder()
	iss.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/svid", strings.NewReader(`{`)))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", rec.Code)
	}
	// Without TLS a request can only carry a token.
	secret, _ := e.newToken("default", "web", time.Hour)
	csr, _ := csrFor(t, webID)
	req := httptest.NewRequest(http.MethodPost, "/v1/svid", bytes.NewReader(reqBody(t, "web", csr)))
	req.Header.Set("Authorization", "Bearer "+secret)
	rec = httptest.NewRecorder()
	iss.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
}

func TestParseWorkloadID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id     string
		ns, sa string
		ok     bool
	}{
		{"spiffe://weft.local/ns/default/sa/web", "default", "web", true},
		{"spiffe://weft.local/ns/shop/sa/api.v2", "shop", "api.v2", true},
		{"spiffe://other.td/ns/a/sa/b", "a", "b", true}, // the trust domain is the caller's to check
		{"spiffe://weft.local/foo", "", "", false},
		{"spiffe://weft.local", "", "", false},
		{"spiffe://weft.local/ns/default", "", "", false},
		{"spiffe://weft.local/ns/default/sa", "", "", false},
		{"spiffe://weft.local/ns/default/sa/web/extra", "", "", false},
		{"spiffe://weft.local/sa/web/ns/default", "", "", false},
		{"spiffe://weft.local/NS/default/SA/web", "", "", false},
	} {
		ns, sa, ok := issuer.ParseWorkloadID(spiffeid.RequireFromString(tc.id))
		if ns != tc.ns || sa != tc.sa || ok != tc.ok {
			t.Errorf("ParseWorkloadID(%s) = %q, %q, %v; want %q, %q, %v", tc.id, ns, sa, ok, tc.ns, tc.sa, tc.ok)
		}
	}
}
