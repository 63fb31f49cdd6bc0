package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults used for zero Options fields.
const (
	DefaultTrustDomain = "weft.local"
	DefaultWorkloadTTL = 24 * time.Hour
)

// Options configure Open. The zero value of each optional field gives its
// documented default.
type Options struct {
	// Dir holds the managed PKI: keys, certificates and rotation state.
	// It is created (or set) to mode 0700 and every file in it is 0600.
	// Required unless CertFile is set, unused then. Only one CA may use a
	// Dir at a time.
	Dir string
	// TrustDomain is the mesh's SPIFFE trust domain; every issued SPIFFE
	// ID must belong to it. Default: weft.local. It cannot change for an
	// existing Dir.
	TrustDomain spiffeid.TrustDomain

	// CertFile, KeyFile and BundleFile (all three, or none) make the CA
	// issue from an intermediate of an existing PKI instead of managing
	// its own: CertFile holds the intermediate certificate (PEM), followed
	// optionally by the certificates between it and the root; KeyFile its
	// private key (PEM: PKCS #8, SEC 1 or PKCS #1); BundleFile the root(s)
	// it chains to, which become the trust bundle. Open verifies that the
	// intermediate is a CA certificate, chains to the bundle, matches its
	// key and may issue SPIFFE certificates in TrustDomain. The files are
	// read once; the CA never writes or rotates them.
	CertFile, KeyFile, BundleFile string

	// WorkloadTTL is the lifetime of a certificate whose request asks for
	// none (ttl 0). Default: DefaultWorkloadTTL.
	WorkloadTTL time.Duration
	// Now returns the current time (for tests). Default: time.Now.
	Now func() time.Time
	// Logger receives the CA's few events (root created, rotation,
	// intermediate renewal); never key material. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.TrustDomain.IsZero() {
		o.TrustDomain = spiffeid.RequireTrustDomainFromString(DefaultTrustDomain)
	}
	set := 0
	for _, f := range []string{o.CertFile, o.KeyFile, o.BundleFile} {
		if f != "" {
			set++
		}
	}
	switch {
	case set != 0 && set != 3:
		return o, errors.New("ca: CertFile, KeyFile and BundleFile go together: set all three or none")
	case set == 0 && o.Dir == "":
		return o, errors.New("ca: Options.Dir is required (or CertFile, KeyFile and BundleFile)")
	case o.WorkloadTTL < 0:
		return o, errors.New("ca: negative WorkloadTTL")
	}
	if o.WorkloadTTL == 0 {
		o.WorkloadTTL = DefaultWorkloadTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// CA is the mesh's certificate authority. It is safe for concurrent use.
// Sign, SignServing and the read-only methods work on an immutable snapshot
// swapped atomically, so they never wait for each other; Rotate,
// FinishRotation and the yearly renewal of the intermediate write files in
// Dir and are serialised among themselves. A CA holds no goroutines or open
// files: there is nothing to close.
//
// Its private keys stay inside: no method returns them, and its fmt and
// slog forms show only the trust domain and the issuing root's pin.
type CA struct {
	td  spiffeid.TrustDomain
	ttl time.Duration
	now func() time.Time
	log *slog.Logger
	dir string // "" for an external PKI

	snap atomic.Pointer[snapshot]

	mu         sync.Mutex    // serialises changes; guards the fields below
	gens       []*generation // managed PKI: oldest first, the last issues
	renewRetry time.Time     // no renewal attempt before this, after a failure
}

// generation is one root of the managed PKI with its intermediate.
type generation struct {
	id       int
	root     *x509.Certificate
	rootKey  crypto.Signer
	inter    *x509.Certificate
	interKey crypto.Signer
}

// snapshot is what the CA serves from; never modified once published.
type snapshot struct {
	roots   []*x509.Certificate // the trust bundle, oldest first
	issuer  issuer
	paths   []path // every chain the CA knows, for RootOf
	managed bool   // the CA owns its roots: non-issuing ones are retiring
}

// issuer is the certificate and key that sign leaves.
type issuer struct {
	chain    []*x509.Certificate // the signing intermediate first, up to the root (excluded)
	key      crypto.Signer
	root     *x509.Certificate
	notAfter time.Time // the earliest expiry of chain and root: no leaf outlives it
}

// path is a chain of CA certificates below a root.
type path struct {
	chain []*x509.Certificate // the intermediate that signs leaves first
	root  *x509.Certificate
}

func newIssuer(chain []*x509.Certificate, key crypto.Signer, root *x509.Certificate) issuer {
	notAfter := root.NotAfter
	for _, c := range chain {
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return issuer{chain: chain, key: key, root: root, notAfter: notAfter}
}

// snapshotOf builds the snapshot of the managed PKI's generations.
func snapshotOf(gens []*generation) *snapshot {
	s := &snapshot{managed: true}
	for _, g := range gens {
		s.roots = append(s.roots, g.root)
		s.paths = append(s.paths, path{chain: []*x509.Certificate{g.inter}, root: g.root})
	}
	cur := gens[len(gens)-1]
	s.issuer = newIssuer([]*x509.Certificate{cur.inter}, cur.interKey, cur.root)
	return s
}

// Open opens the CA: it loads the external intermediate if Options.CertFile
// is set, else the managed PKI in Options.Dir, creating a root and an
// intermediate on first start.
func Open(opts Options) (*CA, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &CA{td: opts.TrustDomain, ttl: opts.WorkloadTTL, now: opts.Now, log: opts.Logger}
	if opts.CertFile != "" {
		s, err := loadExternal(opts)
		if err != nil {
			return nil, err
		}
		c.snap.Store(s)
		c.log.Info("ca: issuing from external intermediate", "trust_domain", c.td.Name(),
			"intermediate", s.issuer.chain[0].Subject.String(), "root", PinOf(s.issuer.root),
			"expires", s.issuer.notAfter)
		return c, nil
	}
	c.dir = opts.Dir
	gens, err := c.openDir()
	if err != nil {
		return nil, err
	}
	c.gens = gens
	c.snap.Store(snapshotOf(gens))
	c.issuerFor(c.now()) // renew a due intermediate now rather than at the first Sign
	return c, nil
}

// TrustDomain returns the trust domain the CA issues in.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// Bundle returns the trusted roots, oldest first: one, or two while a
// rotation is in progress. The slice is the caller's; the certificates are
// shared and must not be modified.
func (c *CA) Bundle() []*x509.Certificate {
	return slices.Clone(c.snap.Load().roots)
}

// Pin returns the pin (see PinOf) of the root that new certificates chain
// to. Clients that bootstrap over an untrusted network compare it with the
// root they are shown.
func (c *CA) Pin() string {
	return PinOf(c.snap.Load().issuer.root)
}

// RootOf returns the trusted root that leaf chains to through the CA's own
// intermediates. It checks signatures only, not validity periods or names
// (use x509svid.Verify with Bundle for that), so it also answers for an
// expired leaf; a caller finishing a rotation asks it whether a workload's
// current certificate comes from the issuing root.
func (c *CA) RootOf(leaf *x509.Certificate) (*x509.Certificate, bool) {
	if leaf == nil {
		return nil, false
	}
	for _, p := range c.snap.Load().paths {
		if chainsTo(leaf, p) {
			return p.root, true
		}
	}
	return nil, false
}

func chainsTo(leaf *x509.Certificate, p path) bool {
	child := leaf
	for _, parent := range append(p.chain[:len(p.chain):len(p.chain)], p.root) {
		if !bytes.Equal(child.RawIssuer, parent.RawSubject) || child.CheckSignatureFrom(parent) != nil {
			return false
		}
		child = parent
	}
	return true
}

// Status describes the trust bundle.
type Status struct {
	// Roots are the trusted roots, oldest first.
	Roots []RootInfo `json:"roots"`
}

// RootInfo describes one trusted root.
type RootInfo struct {
	// Pin identifies the root's key (see PinOf).
	Pin      string    `json:"pin"`
	NotAfter time.Time `json:"notAfter"`
	// Issuing: new certificates chain to this root.
	Issuing bool `json:"issuing"`
	// Retiring: FinishRotation will drop this root from the bundle.
	Retiring bool `json:"retiring"`
}

// Status returns the trusted roots and their roles.
func (c *CA) Status() Status {
	s := c.snap.Load()
	st := Status{Roots: make([]RootInfo, 0, len(s.roots))}
	for _, r := range s.roots {
		issuing := r.Equal(s.issuer.root)
		st.Roots = append(st.Roots, RootInfo{
			Pin:      PinOf(r),
			NotAfter: r.NotAfter,
			Issuing:  issuing,
			Retiring: s.managed && !issuing,
		})
	}
	return st
}

// String describes the CA without any key material.
func (c *CA) String() string {
	if c == nil {
		return "ca.CA(nil)"
	}
	s := c.snap.Load()
	if s == nil {
		return "ca.CA(unopened)"
	}
	return fmt.Sprintf("ca.CA(trust domain %s, issuing root %s, %d trusted)", c.td.Name(), PinOf(s.issuer.root), len(s.roots))
}

// Format prints String for every verb (%v, %+v, %#v, %s, ...), so that no
// formatting of a CA can reach its keys.
func (c *CA) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, c.String())
}

// LogValue makes a CA logged with slog show the same as String.
func (c *CA) LogValue() slog.Value {
	return slog.StringValue(c.String())
}

var (
	_ fmt.Stringer   = (*CA)(nil)
	_ fmt.Formatter  = (*CA)(nil)
	_ slog.LogValuer = (*CA)(nil)
)
