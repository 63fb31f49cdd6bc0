// Package issuer serves proxies' certificate signing requests. A proxy
// proves who it is with a join token (its first certificate) or with its
// current certificate (every renewal, over mutual TLS); the CSR must ask for
// exactly the identity that proof grants. The mesh CA signs it, and the
// issue is recorded so `weft certs` can list every workload's certificate.
//
//	POST /v1/svid  {"workload": "...", "csr": "<base64 DER>"}
//	  Authorization: Bearer weft1.<id>.<secret>   (or a client certificate)
//	→ 200 {"chain": ["<base64 DER>", ...], "bundle": ["<base64 DER>", ...]}
//	  400 bad request, 401 no or invalid credentials, 403 identity not granted
package issuer

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/token"
)

// Prefix is the store prefix of issued-certificate records.
const Prefix = "/certs/"

// Request is the body of POST /v1/svid.
type Request struct {
	Workload string `json:"workload"`
	CSR      []byte `json:"csr"`
}

// Response is the answer to a signed request.
type Response struct {
	Chain  [][]byte `json:"chain"`
	Bundle [][]byte `json:"bundle"`
}

// Record is the last certificate issued to a workload.
type Record struct {
	Workload  string    `json:"workload"`
	Namespace string    `json:"namespace"`
	SPIFFEID  string    `json:"spiffeId"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Root is the pin of the root the certificate chains to.
	Root string `json:"root"`
	// Via is how the caller proved itself: token or certificate.
	Via string `json:"via"`
	// TokenID is the join token the workload enrolled with; revoking it
	// stops renewals.
	TokenID string `json:"tokenId,omitempty"`
	// PrevSerial is the serial before this one: a renewal whose answer was
	// lost may be retried with it.
	PrevSerial string `json:"prevSerial,omitempty"`
}

// Options configure the issuer.
type Options struct {
	CA     *ca.CA
	Tokens *token.Manager
	Store  store.Store
	TTL    time.Duration
	Logger *slog.Logger
}

// Issuer is the HTTP handler. Safe for concurrent use.
type Issuer struct {
	opts    Options
	mu      sync.Mutex
	refused map[string]uint64
	issued  uint64
}

// New returns the issuer.
func New(opts Options) *Issuer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Issuer{opts: opts, refused: map[string]uint64{}}
}

// Stats returns how many certificates were issued and refusals by reason.
func (i *Issuer) Stats() (issued uint64, refused map[string]uint64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make(map[string]uint64, len(i.refused))
	for k, v := range i.refused {
		out[k] = v
	}
	return i.issued, out
}

func (i *Issuer) refuse(w http.ResponseWriter, code int, reason, msg string) {
	i.mu.Lock()
	i.refused[reason]++
	i.mu.Unlock()
	i.opts.Logger.Warn("certificate request refused", "reason", reason, "detail", msg)
	http.Error(w, "issuer: "+msg, code)
}

// ServeHTTP handles POST /v1/svid.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/svid" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		i.refuse(w, http.StatusBadRequest, "bad_request", "request body too large")
		return
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil || len(req.CSR) == 0 {
		i.refuse(w, http.StatusBadRequest, "bad_request", "want JSON {workload, csr}")
		return
	}
	if msgs := validation.IsDNS1123Subdomain(req.Workload); len(msgs) > 0 {
		i.refuse(w, http.StatusBadRequest, "bad_request", "workload: "+strings.Join(msgs, "; "))
		return
	}
	td := i.opts.CA.TrustDomain()

	// Who is asking: a valid certificate of the mesh, or a join token.
	var namespace, identity, via, tokenID string
	var prev *Record
	expectRev := store.AnyRevision
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		id, err := i.verifyPeer(r.TLS.PeerCertificates)
		if err != nil {
			i.refuse(w, http.StatusUnauthorized, "bad_client_certificate", err.Error())
			return
		}
		ns, sa, ok := parseWorkloadID(id)
		if !ok {
			i.refuse(w, http.StatusForbidden, "not_a_workload", fmt.Sprintf("%s is not a workload identity", id))
			return
		}
		// A renewal must come from the workload's current (or previous)
		// certificate, and its join token must not have been revoked: a
		// stolen older certificate cannot renew, and revoking the token
		// evicts the workload at its next renewal.
		rec, rev, err := i.lookup(r.Context(), ns, req.Workload)
		serial := r.TLS.PeerCertificates[0].SerialNumber.Text(16)
		if err != nil || rec.SPIFFEID != id.String() || (rec.Serial != serial && rec.PrevSerial != serial) {
			i.refuse(w, http.StatusForbidden, "not_current_certificate", fmt.Sprintf("the certificate is not %s/%s's current one; join again with a token", ns, req.Workload))
			return
		}
		if rec.TokenID != "" {
			tok, err := i.opts.Tokens.Lookup(r.Context(), rec.TokenID)
			switch {
			case errors.Is(err, token.ErrNotFound) || (err == nil && tok.Revoked):
				i.refuse(w, http.StatusUnauthorized, "token_revoked", fmt.Sprintf("the join token of %s/%s was revoked", ns, req.Workload))
				return
			case err != nil:
				i.opts.Logger.Error("token lookup failed", "error", err)
				http.Error(w, "issuer: the control plane's store is unavailable; retry", http.StatusInternalServerError)
				return
			}
		}
		prev = &rec
		expectRev = rev
		namespace, identity, via, tokenID = ns, sa, "certificate", rec.TokenID
	} else {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			i.refuse(w, http.StatusUnauthorized, "no_credentials", "present a join token (Authorization: Bearer ...) or a mesh certificate")
			return
		}
		tok, err := i.opts.Tokens.Validate(r.Context(), secret)
		if err != nil {
			var ie *token.InvalidError
			reason := "token_invalid"
			if errors.As(err, &ie) {
				reason = "token_" + string(ie.Reason)
			}
			i.refuse(w, http.StatusUnauthorized, reason, err.Error())
			return
		}
		namespace, identity, via, tokenID = tok.Namespace, tok.Identity, "token", tok.ID
	}
	if namespace == token.ReservedNamespace && identity == token.ReservedIdentity {
		i.refuse(w, http.StatusForbidden, "reserved_identity", "that is the control plane's own identity")
		return
	}
	want, err := spiffeid.FromSegments(td, "ns", namespace, "sa", identity)
	if err != nil {
		i.refuse(w, http.StatusForbidden, "bad_identity", err.Error())
		return
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		i.refuse(w, http.StatusBadRequest, "bad_csr", "csr: "+err.Error())
		return
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != want.String() {
		got := "none"
		if len(csr.URIs) > 0 {
			got = csr.URIs[0].String()
		}
		i.refuse(w, http.StatusForbidden, "identity_not_granted", fmt.Sprintf("the CSR asks for %s, the caller may only have %s", got, want))
		return
	}
	chain, err := i.opts.CA.Sign(req.CSR, want, i.opts.TTL)
	if err != nil {
		i.refuse(w, http.StatusForbidden, "csr_refused", err.Error())
		return
	}
	leaf := chain[0]
	rec := Record{Workload: req.Workload, Namespace: namespace, SPIFFEID: want.String(), Serial: leaf.SerialNumber.Text(16),
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Via: via, TokenID: tokenID}
	if prev != nil {
		rec.PrevSerial = prev.Serial
	}
	if root, ok := i.opts.CA.RootOf(leaf); ok {
		rec.Root = ca.PinOf(root)
	}
	// The record decides which certificate may renew next: without it the
	// certificate is useless, so a failed write fails the request (the
	// proxy retries). A concurrent renewal of the same workload loses.
	if err := i.record(r.Context(), rec, expectRev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			i.refuse(w, http.StatusConflict, "concurrent_renewal", "another renewal of this workload happened meanwhile; retry with the current certificate")
			return
		}
		i.opts.Logger.Error("could not record issued certificate", "workload", req.Workload, "error", err)
		http.Error(w, "issuer: could not record the certificate; retry", http.StatusInternalServerError)
		return
	}
	i.mu.Lock()
	i.issued++
	i.mu.Unlock()
	resp := Response{}
	for _, c := range chain {
		resp.Chain = append(resp.Chain, c.Raw)
	}
	for _, c := range i.opts.CA.Bundle() {
		resp.Bundle = append(resp.Bundle, c.Raw)
	}
	i.opts.Logger.Info("certificate issued", "workload", namespace+"/"+req.Workload, "id", want.String(),
		"serial", rec.Serial, "expires", leaf.NotAfter, "via", via)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (i *Issuer) verifyPeer(certs []*x509.Certificate) (spiffeid.ID, error) {
	b := x509bundle.FromX509Authorities(i.opts.CA.TrustDomain(), i.opts.CA.Bundle())
	id, _, err := x509svid.Verify(certs, b)
	return id, err
}

// parseWorkloadID splits spiffe://TD/ns/NS/sa/SA.
func parseWorkloadID(id spiffeid.ID) (ns, sa string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// ParseWorkloadID splits a workload SPIFFE ID into namespace and identity.
func ParseWorkloadID(id spiffeid.ID) (ns, sa string, ok bool) { return parseWorkloadID(id) }

func (i *Issuer) lookup(ctx context.Context, namespace, workload string) (Record, int64, error) {
	kv, err := i.opts.Store.Get(ctx, Prefix+namespace+"/"+workload)
	if err != nil {
		return Record{}, 0, err
	}
	var rec Record
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return Record{}, 0, err
	}
	return rec, kv.Revision, nil
}

func (i *Issuer) record(ctx context.Context, rec Record, expectRevision int64) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = i.opts.Store.Put(ctx, Prefix+rec.Namespace+"/"+rec.Workload, b, expectRevision)
	return err
}

// Records lists the last certificate of every workload, sorted.
func Records(ctx context.Context, st store.Store) ([]Record, error) {
	kvs, _, err := st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		var r Record
		if json.Unmarshal(kv.Value, &r) == nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Namespace != out[b].Namespace {
			return out[a].Namespace < out[b].Namespace
		}
		return out[a].Workload < out[b].Workload
	})
	return out, nil
}
