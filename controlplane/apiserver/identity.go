package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/weftmesh/weft/controlplane/ca"
	"github.com/weftmesh/weft/controlplane/issuer"
	"github.com/weftmesh/weft/controlplane/token"
)

// Identity is what the API needs of the mesh's identity machinery.
type Identity struct {
	CA     *ca.CA
	Tokens *token.Manager
	Issuer *issuer.Issuer
	// IssuerAddr and XDSAddr are printed with new tokens.
	IssuerAddr, XDSAddr string
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Namespace string `json:"namespace"`
	Identity  string `json:"identity"`
	// TTL is a Go duration (24h by default).
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse is a new join token and what a proxy needs with it.
type TokenResponse struct {
	Token       string      `json:"token"`
	Info        token.Token `json:"info"`
	CAPin       string      `json:"caPin"`
	TrustDomain string      `json:"trustDomain"`
	Issuer      string      `json:"issuer"`
	XDS         string      `json:"xds"`
}

// CAStatus is the answer of GET /v1/ca.
type CAStatus struct {
	TrustDomain string            `json:"trustDomain"`
	Pin         string            `json:"pin"`
	Roots       []ca.RootInfo     `json:"roots"`
	Issued      uint64            `json:"issued"`
	Refused     map[string]uint64 `json:"refused"`
	// Pending lists the workloads whose last certificate does not chain to
	// the issuing root (a rotation can finish when it is empty).
	Pending []string `json:"pending"`
}

func (h *Handler) registerIdentity() {
	id := h.opts.Identity
	if id == nil {
		return
	}
	h.mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req TokenRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "want JSON {namespace, identity, ttl}")
			return
		}
		ttl := 24 * time.Hour
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q: %v", req.TTL, err))
				return
			}
			ttl = d
		}
		secret, info, err := id.Tokens.Create(r.Context(), req.Namespace, req.Identity, ttl)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.opts.Logger.Info("join token created", "id", info.ID, "namespace", info.Namespace, "identity", info.Identity, "expires", info.Expires)
		writeJSON(w, http.StatusCreated, TokenResponse{Token: secret, Info: info, CAPin: id.CA.Pin(),
			TrustDomain: id.CA.TrustDomain().String(), Issuer: id.IssuerAddr, XDS: id.XDSAddr})
	})
	h.mux.HandleFunc("GET /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		list, err := id.Tokens.List(r.Context())
		if err != nil {
			h.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": list})
	})
	h.mux.HandleFunc("DELETE /v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := id.Tokens.Revoke(r.Context(), r.PathValue("id")); err != nil {
			if errors.Is(err, token.ErrNotFound) {
				writeError(w, http.StatusNotFound, "no token "+r.PathValue("id"))
				return
			}
			h.storeError(w, err)
			return
		}
		h.opts.Logger.Info("join token revoked", "id", r.PathValue("id"))
		writeJSON(w, http.StatusOK, map[string]string{"result": "revoked"})
	})
	h.mux.HandleFunc("GET /v1/certs", func(w http.ResponseWriter, r *http.Request) {
		recs, err := issuer.Records(r.Context(), h.opts.Store)
		if err != nil {
			h.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": recs})
	})
	h.mux.HandleFunc("GET /v1/ca", func(w http.ResponseWriter, r *http.Request) {
		st, err := h.caStatus(r.Context())
		if err != nil {
			h.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	h.mux.HandleFunc("POST /v1/ca/rotate", func(w http.ResponseWriter, r *http.Request) {
		if err := id.CA.Rotate(); err != nil {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		h.opts.Logger.Info("CA rotation started: a new root is trusted and issues; the old one is trusted until the rotation finishes")
		if h.opts.OnBundleChange != nil {
			h.opts.OnBundleChange()
		}
		st, _ := h.caStatus(r.Context())
		writeJSON(w, http.StatusOK, st)
	})
	h.mux.HandleFunc("POST /v1/ca/rotate/finish", func(w http.ResponseWriter, r *http.Request) {
		st, err := h.caStatus(r.Context())
		if err != nil {
			h.storeError(w, err)
			return
		}
		if len(st.Pending) > 0 && r.URL.Query().Get("force") != "true" {
			writeError(w, http.StatusConflict, fmt.Sprintf("%d workloads still hold certificates from the old root; they renew at half their lifetime (or retry with --force)", len(st.Pending)), st.Pending...)
			return
		}
		if err := id.CA.FinishRotation(); err != nil {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		h.opts.Logger.Info("CA rotation finished: the old root is no longer trusted")
		if h.opts.OnBundleChange != nil {
			h.opts.OnBundleChange()
		}
		st, _ = h.caStatus(r.Context())
		writeJSON(w, http.StatusOK, st)
	})
}

func (h *Handler) caStatus(ctx context.Context) (*CAStatus, error) {
	id := h.opts.Identity
	s := id.CA.Status()
	issued, refused := id.Issuer.Stats()
	out := &CAStatus{TrustDomain: id.CA.TrustDomain().String(), Pin: id.CA.Pin(), Roots: s.Roots, Issued: issued, Refused: refused, Pending: []string{}}
	recs, err := issuer.Records(ctx, h.opts.Store)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	if h.opts.Workloads != nil {
		for _, w := range h.opts.Workloads.List() {
			live[w.Namespace+"/"+w.Name] = true
		}
	}
	for _, r := range recs {
		key := r.Namespace + "/" + r.Workload
		if r.Root != out.Pin && live[key] && r.NotAfter.After(time.Now()) {
			out.Pending = append(out.Pending, key)
		}
	}
	return out, nil
}
