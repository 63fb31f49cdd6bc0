// Package apiserver is the control plane's resource API: HTTP with JSON
// bodies, Kubernetes-shaped objects. Every write is decoded strictly and
// validated before anything is stored; an invalid object is refused with
// every problem and its field path, and the store is left untouched.
//
//	GET    /v1/{plural}[?namespace=NS]   list
//	GET    /v1/{plural}/{ns}/{name}      read
//	PUT    /v1/{plural}/{ns}/{name}      create or replace (apply)
//	DELETE /v1/{plural}/{ns}/{name}      delete
//	GET    /v1/workloads                 registered workloads
//	GET    /v1/proxies                   connected proxies and their xDS versions
//	GET    /v1/problems                  what the last push could not honour
//	GET    /v1/stats, /v1/tap            the traffic view (Options.Telemetry)
//	GET    /v1/prometheus/targets        Prometheus service discovery (Options.Telemetry)
//	GET    /healthz                      liveness
//
// Errors are JSON {"error": "...", "details": ["field: problem", ...]}.
package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/status"
	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/xds"
)

// ResourcePrefix is the store prefix of configuration objects:
// /resources/{Kind}/{namespace}/{name}.
const ResourcePrefix = "/resources/"

// maxBody bounds a request body.
const maxBody = 1 << 20

// StoreKey is where an object is stored.
func StoreKey(kind, namespace, name string) string {
	return ResourcePrefix + kind + "/" + namespace + "/" + name
}

// Workloads lists registered workloads.
type Workloads interface{ List() []*model.Workload }

// Proxies reports connected proxies and config problems.
type Proxies interface {
	Proxies() []xds.ProxyStatus
	Problems() []string
}

// Options configure the API.
type Options struct {
	Store     store.Store
	Workloads Workloads
	Proxies   Proxies
	// Identity, when set, serves tokens, certificates and the CA.
	Identity *Identity
	// OnBundleChange is called after the trusted roots change.
	OnBundleChange func()
	// Telemetry, when set, serves GET /v1/stats, /v1/tap and
	// /v1/prometheus/targets (controlplane/telemetry's APIHandler).
	Telemetry http.Handler
	// KeySets tells how fetching each RequestAuthentication jwksUri
	// goes (controlplane/jwks's Fetcher), for their status; nil: every
	// jwksUri shows as not fetched yet.
	KeySets status.KeySets
	Logger  *slog.Logger
}

// Handler serves the API. It is safe for concurrent use.
type Handler struct {
	opts        Options
	mux         *http.ServeMux
	transitions *status.Transitions
}

// New returns the API handler.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), transitions: status.NewTransitions()}
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	h.mux.HandleFunc("GET /v1/workloads", h.workloads)
	h.mux.HandleFunc("GET /v1/proxies", h.proxies)
	h.mux.HandleFunc("GET /v1/problems", h.problems)
	h.registerIdentity()
	if opts.Telemetry != nil {
		for _, p := range []string{"GET /v1/stats", "GET /v1/tap", "GET /v1/prometheus/targets"} {
			h.mux.Handle(p, opts.Telemetry)
		}
	}
	h.mux.HandleFunc("GET /v1/{plural}", h.list)
	h.mux.HandleFunc("GET /v1/{plural}/{namespace}/{name}", h.get)
	h.mux.HandleFunc("PUT /v1/{plural}/{namespace}/{name}", h.put)
	h.mux.HandleFunc("DELETE /v1/{plural}/{namespace}/{name}", h.delete)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

// ApplyResult is the answer to a PUT.
type ApplyResult struct {
	// Result is created, configured or unchanged.
	Result string          `json:"result"`
	Object json.RawMessage `json:"object"`
}

// List is the answer to a list.
type List struct {
	Items []json.RawMessage `json:"items"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string, details ...string) {
	writeJSON(w, code, ErrorBody{Error: msg, Details: details})
}

func (h *Handler) kind(w http.ResponseWriter, r *http.Request) *resource.Kind {
	k, err := resource.LookupKind(r.PathValue("plural"))
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return nil
	}
	return k
}

func (h *Handler) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "the object changed while it was being written; apply again")
	default:
		h.opts.Logger.Error("store error", "error", err)
		writeError(w, http.StatusInternalServerError, "store error: "+err.Error())
	}
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	k := h.kind(w, r)
	if k == nil {
		return
	}
	prefix := ResourcePrefix + k.Name + "/"
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		prefix += ns + "/"
	}
	kvs, _, err := h.opts.Store.List(r.Context(), prefix)
	if err != nil {
		h.storeError(w, err)
		return
	}
	rep := h.report(r.Context(), k)
	out := List{Items: make([]json.RawMessage, 0, len(kvs))}
	for _, kv := range kvs {
		out.Items = append(out.Items, h.withStatus(k, rep, kv))
	}
	writeJSON(w, http.StatusOK, out)
}

// withVersion returns the stored object with metadata.resourceVersion set
// to its store revision.
func withVersion(kv store.KV) json.RawMessage {
	var m map[string]any
	if err := json.Unmarshal(kv.Value, &m); err != nil {
		return kv.Value
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		md["resourceVersion"] = strconv.FormatInt(kv.Revision, 10)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return kv.Value
	}
	return b
}

// hasStatus lists the kinds whose status the API computes on every read.
var hasStatus = map[string]bool{"HTTPRoute": true, "GRPCRoute": true, "TCPRoute": true, "TrafficPolicy": true,
	"AuthorizationPolicy": true, "RequestAuthentication": true}

// report computes the status of every route and policy from what the
// store holds now, or returns nil for kinds without status (or when the
// store cannot be read: the objects are then served without status).
func (h *Handler) report(ctx context.Context, k *resource.Kind) *status.Report {
	if !hasStatus[k.Name] {
		return nil
	}
	kvs, _, err := h.opts.Store.List(ctx, ResourcePrefix)
	if err != nil {
		h.opts.Logger.Error("status: listing resources", "error", err)
		return nil
	}
	objs := make([]resource.Object, 0, len(kvs))
	for _, kv := range kvs {
		o, err := resource.DecodeJSON(kv.Value)
		if err == nil {
			err = resource.Validate(o)
		}
		if err != nil {
			continue // the control plane skips it too, and logs it
		}
		objs = append(objs, o)
	}
	st, err := model.FromObjects(objs, nil)
	if err != nil {
		h.opts.Logger.Error("status: building the model", "error", err)
		return nil
	}
	return status.Compute(st, h.opts.KeySets)
}

// withStatus returns the stored object with its resourceVersion and, for
// routes and policies, the status computed in rep.
func (h *Handler) withStatus(k *resource.Kind, rep *status.Report, kv store.KV) json.RawMessage {
	if rep == nil {
		return withVersion(kv)
	}
	o, err := resource.DecodeJSON(kv.Value)
	if err != nil {
		return withVersion(kv)
	}
	rep.Fill(o, h.transitions, time.Now())
	b, err := json.Marshal(o)
	if err != nil {
		return withVersion(kv)
	}
	return withVersion(store.KV{Key: kv.Key, Value: b, Revision: kv.Revision})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	k := h.kind(w, r)
	if k == nil {
		return
	}
	kv, err := h.opts.Store.Get(r.Context(), StoreKey(k.Name, r.PathValue("namespace"), r.PathValue("name")))
	if err != nil {
		h.storeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(h.withStatus(k, h.report(r.Context(), k), kv))
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request) {
	k := h.kind(w, r)
	if k == nil {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBody))
		return
	}
	obj, err := resource.DecodeJSON(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Status is the control plane's to compute (on every read), never the
	// client's to write.
	resource.ClearStatus(obj)
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	got := resource.KeyOf(obj)
	if got.Kind != k.Name || got.Namespace != ns || got.Name != name {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body is %s but the URL names %s/%s/%s", got, k.Name, ns, name))
		return
	}
	if err := resource.Validate(obj); err != nil {
		var ve *resource.ValidationError
		if errors.As(err, &ve) {
			writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("%s %s/%s is invalid", k.Name, ns, name), ve.Details()...)
			return
		}
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if details := h.checkAgainstStore(r.Context(), obj); len(details) > 0 {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("%s %s/%s is invalid", k.Name, ns, name), details...)
		return
	}
	result, stored, err := h.apply(r.Context(), k, obj)
	if err != nil {
		h.storeError(w, err)
		return
	}
	code := http.StatusOK
	if result == "created" {
		code = http.StatusCreated
	}
	h.opts.Logger.Info("applied", "kind", k.Name, "namespace", ns, "name", name, "result", result)
	writeJSON(w, code, ApplyResult{Result: result, Object: stored})
}

// checkAgainstStore refuses what can only be judged with other objects:
// an AuthorizationPolicy with HTTP (L7) fields whose target Service port
// is TCP, where they cannot be evaluated. (Mesh- and namespace-wide
// policies cannot be judged at apply time; on TCP ports their L7 rules
// fail closed, see docs/security.md.)
func (h *Handler) checkAgainstStore(ctx context.Context, obj resource.Object) []string {
	p, ok := obj.(*v1alpha1.AuthorizationPolicy)
	if !ok || p.Spec.TargetRef == nil {
		return nil
	}
	kv, err := h.opts.Store.Get(ctx, StoreKey("Service", p.Namespace, p.Spec.TargetRef.Name))
	if err != nil {
		return nil // a missing target is reported in the policy's status
	}
	var svc v1alpha1.Service
	if json.Unmarshal(kv.Value, &svc) != nil {
		return nil
	}
	var tcp []string
	for _, port := range svc.Spec.Ports {
		if p.Spec.TargetRef.Port != 0 && port.Port != p.Spec.TargetRef.Port {
			continue
		}
		if port.Protocol == "TCP" {
			tcp = append(tcp, strconv.Itoa(int(port.Port)))
		}
	}
	if len(tcp) == 0 {
		return nil
	}
	var out []string
	for i, rule := range p.Spec.Rules {
		if resource.AuthzRuleL7(rule) {
			out = append(out, fmt.Sprintf("spec.rules[%d]: Invalid value: HTTP attributes (methods, hosts, paths, request principals, headers or claims) cannot be evaluated on TCP port %s of Service %s: target an HTTP port (targetRef.port) or use only principals, namespaces, ipBlocks and ports",
				i, strings.Join(tcp, ", "), p.Spec.TargetRef.Name))
		}
	}
	return out
}

// apply stores obj, keeping server-owned metadata of an existing object.
func (h *Handler) apply(ctx context.Context, k *resource.Kind, obj resource.Object) (string, json.RawMessage, error) {
	key := StoreKey(k.Name, obj.GetNamespace(), obj.GetName())
	for attempt := 0; attempt < 5; attempt++ {
		prev, err := h.opts.Store.Get(ctx, key)
		expect := int64(0)
		result := "created"
		switch {
		case err == nil:
			expect = prev.Revision
			result = "configured"
			old := k.New()
			if err := json.Unmarshal(prev.Value, old); err != nil {
				return "", nil, fmt.Errorf("apiserver: stored %s unreadable: %w", key, err)
			}
			obj.SetCreationTimestamp(old.GetCreationTimestamp())
			obj.SetUID(old.GetUID())
			obj.SetGeneration(old.GetGeneration())
			if sameContent(old, obj) {
				return "unchanged", withVersion(prev), nil
			}
			obj.SetGeneration(old.GetGeneration() + 1)
		case errors.Is(err, store.ErrNotFound):
			obj.SetCreationTimestamp(metav1.NewTime(time.Now().UTC().Truncate(time.Second)))
			obj.SetUID(newUID())
			obj.SetGeneration(1)
		default:
			return "", nil, err
		}
		obj.SetResourceVersion("")
		obj.SetManagedFields(nil)
		b, err := json.Marshal(obj)
		if err != nil {
			return "", nil, fmt.Errorf("apiserver: encode: %w", err)
		}
		rev, err := h.opts.Store.Put(ctx, key, b, expect)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return result, withVersion(store.KV{Key: key, Value: b, Revision: rev}), nil
	}
	return "", nil, store.ErrConflict
}

// sameContent compares what a user controls: labels, annotations, spec.
func sameContent(a, b resource.Object) bool {
	if !reflect.DeepEqual(nilIfEmpty(a.GetLabels()), nilIfEmpty(b.GetLabels())) ||
		!reflect.DeepEqual(nilIfEmpty(a.GetAnnotations()), nilIfEmpty(b.GetAnnotations())) {
		return false
	}
	return reflect.DeepEqual(specOf(a), specOf(b))
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func specOf(o resource.Object) any {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m["spec"]
}

func newUID() types.UID {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return types.UID(strings.Join([]string{s[:8], s[8:12], s[12:16], s[16:20], s[20:]}, "-"))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	k := h.kind(w, r)
	if k == nil {
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if _, err := h.opts.Store.Delete(r.Context(), StoreKey(k.Name, ns, name)); err != nil {
		h.storeError(w, err)
		return
	}
	h.opts.Logger.Info("deleted", "kind", k.Name, "namespace", ns, "name", name)
	writeJSON(w, http.StatusOK, map[string]string{"result": "deleted"})
}

func (h *Handler) workloads(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": h.opts.Workloads.List()})
}

func (h *Handler) proxies(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": h.opts.Proxies.Proxies()})
}

func (h *Handler) problems(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": h.opts.Proxies.Problems()})
}
