package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/resource"
	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/xds"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"
)

// readSources reads every object from files, directories (*.yaml, *.yml,
// *.json, sorted) or "-" (stdin).
func readSources(paths []string, stdin io.Reader) ([]resource.Object, error) {
	var objs []resource.Object
	for _, p := range paths {
		var files []string
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			o, err := resource.DecodeYAML("stdin", data)
			if err != nil {
				return nil, err
			}
			objs = append(objs, o...)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				ext := strings.ToLower(filepath.Ext(e.Name()))
				if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			sort.Strings(files)
		} else {
			files = []string{p}
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			o, err := resource.DecodeYAML(f, data)
			if err != nil {
				return nil, err
			}
			objs = append(objs, o...)
		}
	}
	return objs, nil
}

func newApplyCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update resources from YAML or JSON",
		Long: `Apply Services, HTTPRoutes, GRPCRoutes, TCPRoutes, TrafficPolicies and MTLSPolicies. Each object is validated by the control plane;
an invalid one is refused with every problem and its field path, and nothing of it
is stored. Objects are applied in order; the command exits 1 if any failed.`,
		Example: "  weft apply -f demo/config/\n  cat route.yaml | weft apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("apply needs -f FILE, -f DIR or -f - (stdin)")
			}
			objs, err := readSources(files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(objs) == 0 {
				return errors.New("no objects found in the given files")
			}
			return applyObjects(cmd.Context(), g.client(), objs, g.out, g.errOut)
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "file, directory or - for stdin (repeatable)")
	return cmd
}

// applyObjects applies each object, printing kubectl-style lines.
func applyObjects(ctx context.Context, c *Client, objs []resource.Object, out, errOut io.Writer) error {
	failed := 0
	for _, o := range objs {
		k, err := resource.KindOf(o)
		if err != nil {
			return err
		}
		body, err := json.Marshal(o)
		if err != nil {
			return err
		}
		ref := fmt.Sprintf("%s/%s", strings.ToLower(k.Name), o.GetName())
		res, err := c.Apply(ctx, k.Plural, o.GetNamespace(), o.GetName(), body)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) {
				return err
			}
			fmt.Fprintf(errOut, "%s (namespace %s) refused: %v\n", ref, o.GetNamespace(), err)
			failed++
			continue
		}
		fmt.Fprintf(out, "%s %s\n", ref, res.Result)
	}
	if failed > 0 {
		return exitCode(1)
	}
	return nil
}

// pseudoKinds are read-only views served by the control plane.
var pseudoKinds = map[string]string{
	"workload": "workloads", "workloads": "workloads", "wl": "workloads",
	"proxy": "proxies", "proxies": "proxies",
}

func newGetCmd(g *globals) *cobra.Command {
	var namespace, output string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show resources, workloads or proxies",
		Long: `Show resources (services, httproutes, grpcroutes, tcproutes, trafficpolicies, mtlspolicies),
registered workloads or connected proxies. Without -n, lists every namespace.

Routes show whether their parent Service accepted them (ACCEPTED) and whether every
backend exists (RESOLVED); policies whether they apply (ACCEPTED); RequestAuthentications
the state of each issuer's key set (JWKS: ok, pending, failed, no usable keys, or stale
while fetching fails and the keys fetched before are served). Anything not honoured is
listed below the table with its reason; -o yaml shows the full status.`,
		Example: "  weft get services\n  weft get httproute catalog-canary -n shop -o yaml\n  weft get workloads",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			ctx := cmd.Context()
			if p, ok := pseudoKinds[strings.ToLower(args[0])]; ok {
				return getPseudo(ctx, c, p, namespace, output, g.out)
			}
			k, err := resource.LookupKind(args[0])
			if err != nil {
				return fmt.Errorf("%v, workloads, proxies", err)
			}
			var items []json.RawMessage
			if len(args) == 2 {
				ns := namespace
				if ns == "" {
					ns = k.DefaultNamespace()
				}
				raw, err := c.Get(ctx, k.Plural, ns, args[1])
				var ae *APIError
				if errors.As(err, &ae) && ae.Status == 404 {
					return fmt.Errorf("%s %q not found in namespace %q", k.Name, args[1], ns)
				}
				if err != nil {
					return err
				}
				items = []json.RawMessage{raw}
			} else {
				if items, err = c.List(ctx, k.Plural, namespace); err != nil {
					return err
				}
			}
			if err := printObjects(g.out, k, items, output, len(args) == 2); err != nil {
				return err
			}
			if k.Name == "HTTPRoute" && (output == "table" || output == "wide") {
				// What the mesh accepted but cannot honour (a backend that
				// does not exist answers 500) is said, never silent.
				var p struct {
					Items []string `json:"items"`
				}
				if err := c.Raw(ctx, "/v1/problems", &p); err == nil && len(p.Items) > 0 {
					fmt.Fprintln(g.out, "\nProblems (accepted, but not all of it can be honoured):")
					for _, item := range p.Items {
						fmt.Fprintln(g.out, "  - "+item)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: all for lists, \"default\" for one object)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, wide, yaml or json")
	return cmd
}

func printObjects(w io.Writer, k *resource.Kind, items []json.RawMessage, output string, single bool) error {
	switch output {
	case "json":
		if single {
			return writeIndented(w, items[0])
		}
		return writeIndented(w, mustJSON(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}))
	case "yaml":
		var v any = items
		if single {
			v = items[0]
		} else {
			v = map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
		}
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "table", "wide", "":
	default:
		return fmt.Errorf("-o %q: use table, wide, yaml or json", output)
	}
	if len(items) == 0 {
		fmt.Fprintf(w, "No %s found.\n", k.Plural)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	defer tw.Flush()
	now := nowFunc()
	// notes say what the mesh accepted but cannot honour, never silently.
	var notes []string
	switch k.Name {
	case "Service":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tSELECTOR\tPORTS\tAGE")
		for _, raw := range items {
			var s v1alpha1.Service
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			var ports []string
			for _, p := range s.Spec.Ports {
				ports = append(ports, fmt.Sprintf("%d→%d/%s", p.Port, p.TargetPort, p.Protocol))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, selector(s.Spec.Selector), strings.Join(ports, ","), age(now, s.CreationTimestamp.Time))
		}
	case "MTLSPolicy":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tSCOPE\tMODE\tAGE")
		for _, raw := range items {
			var p v1alpha1.MTLSPolicy
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			scope := "namespace"
			switch {
			case p.Spec.TargetRef != nil:
				scope = "service " + p.Spec.TargetRef.Name
			case len(p.Spec.Selector) > 0:
				scope = selector(p.Spec.Selector)
			case p.Namespace == v1alpha1.MeshNamespace:
				scope = "mesh"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, scope, p.Spec.Mode, age(now, p.CreationTimestamp.Time))
		}
	case "HTTPRoute", "GRPCRoute":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tPARENTS\tRULES\tBACKENDS\tACCEPTED\tRESOLVED\tAGE")
		for _, raw := range items {
			var r struct {
				metav1.ObjectMeta `json:"metadata"`
				Spec              struct {
					ParentRefs []gatewayv1.ParentReference `json:"parentRefs"`
					Rules      []struct {
						BackendRefs []gatewayv1.BackendRef `json:"backendRefs"`
					} `json:"rules"`
				} `json:"spec"`
				Status gatewayv1.RouteStatus `json:"status"`
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			var backends []string
			for _, rule := range r.Spec.Rules {
				for _, b := range rule.BackendRefs {
					backends = append(backends, backendLabel(b))
				}
			}
			acc, res := routeConditions(r.Status)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, parentsLabel(r.Spec.ParentRefs), len(r.Spec.Rules),
				orNone(backends), acc, res, age(now, r.CreationTimestamp.Time))
			notes = append(notes, routeNotes(k.Name, r.Namespace, r.Name, r.Status)...)
		}
	case "TCPRoute":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tPARENTS\tBACKENDS\tACCEPTED\tRESOLVED\tAGE")
		for _, raw := range items {
			var r gatewayv1alpha2.TCPRoute
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			var backends []string
			for _, rule := range r.Spec.Rules {
				for _, b := range rule.BackendRefs {
					backends = append(backends, backendLabel(b))
				}
			}
			st := gatewayv1.RouteStatus(r.Status.RouteStatus)
			acc, res := routeConditions(st)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, parentsLabel(r.Spec.ParentRefs), orNone(backends),
				acc, res, age(now, r.CreationTimestamp.Time))
			notes = append(notes, routeNotes(k.Name, r.Namespace, r.Name, st)...)
		}
	case "TrafficPolicy":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tTARGET\tSETS\tACCEPTED\tAGE")
		for _, raw := range items {
			var p v1alpha1.TrafficPolicy
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			acc := "Unknown"
			for _, a := range p.Status.Ancestors {
				for _, c := range a.Conditions {
					if c.Type != "Accepted" {
						continue
					}
					acc = conditionLabel(c)
					if c.Status != metav1.ConditionTrue {
						notes = append(notes, fmt.Sprintf("trafficpolicy %s/%s: %s: %s", p.Namespace, p.Name, c.Reason, c.Message))
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, targetLabel(p.Spec.TargetRef), policySets(p.Spec),
				acc, age(now, p.CreationTimestamp.Time))
		}
	case "AuthorizationPolicy":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tTARGET\tACTION\tRULES\tACCEPTED\tAGE")
		for _, raw := range items {
			var p v1alpha1.AuthorizationPolicy
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			acc, n := ancestorsAccepted("authorizationpolicy", p.Namespace, p.Name, p.Status)
			notes = append(notes, n...)
			action := p.Spec.Action
			if action == v1alpha1.AuthzCustom && p.Spec.Provider != nil {
				action += " (" + p.Spec.Provider.Name + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Namespace, p.Name, authzTargetLabel(p.Namespace, p.Spec.TargetRef),
				action, len(p.Spec.Rules), acc, age(now, p.CreationTimestamp.Time))
		}
	case "RequestAuthentication":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tTARGET\tISSUERS\tACCEPTED\tJWKS\tAGE")
		for _, raw := range items {
			var r v1alpha1.RequestAuthentication
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			acc, n := ancestorsAccepted("requestauthentication", r.Namespace, r.Name, r.Status.PolicyStatus)
			notes = append(notes, n...)
			_, n = ancestorsCondition("ResolvedRefs", "requestauthentication", r.Namespace, r.Name, r.Status.PolicyStatus)
			notes = append(notes, n...)
			var issuers []string
			for _, j := range r.Spec.JWTRules {
				issuers = append(issuers, j.Issuer)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, authzTargetLabel(r.Namespace, r.Spec.TargetRef),
				orNone(issuers), acc, jwksLabel(now, r.Status.JWKS), age(now, r.CreationTimestamp.Time))
		}
	case "MeshConfig":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tTRACING\tDEFAULT-ACTION\tAUTHORIZERS\tAGE")
		for _, raw := range items {
			var m v1alpha1.MeshConfig
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			tracing, action, providers := "off", "ALLOW", []string{}
			if t := m.Spec.Tracing; t != nil {
				tracing = "on"
				if t.SampleRate != nil {
					tracing = fmt.Sprintf("%g%%", *t.SampleRate)
				}
			}
			if a := m.Spec.Authorization; a != nil {
				if a.DefaultAction != "" {
					action = a.DefaultAction
				}
				for _, p := range a.Providers {
					providers = append(providers, p.Name)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Namespace, m.Name, tracing, action, orNone(providers), age(now, m.CreationTimestamp.Time))
		}
	default:
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tAGE")
		for _, raw := range items {
			var m metav1.PartialObjectMetadata
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Namespace, m.Name, age(now, m.CreationTimestamp.Time))
		}
	}
	if len(notes) > 0 {
		tw.Flush()
		fmt.Fprintln(w, "\nNot (fully) honoured:")
		for _, n := range notes {
			fmt.Fprintln(w, "  - "+n)
		}
	}
	return nil
}

func parentsLabel(refs []gatewayv1.ParentReference) string {
	var parents []string
	for _, p := range refs {
		s := string(p.Name)
		switch {
		case p.Port != nil:
			s += fmt.Sprintf(":%d", *p.Port)
		case p.SectionName != nil:
			s += ":" + string(*p.SectionName)
		}
		parents = append(parents, s)
	}
	return orNone(parents)
}

func backendLabel(b gatewayv1.BackendRef) string {
	s := string(b.Name)
	if b.Weight != nil {
		s += fmt.Sprintf("(%d)", *b.Weight)
	}
	return s
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "<none>"
	}
	return strings.Join(list, ",")
}

// conditionLabel is True, or the reason a condition is not.
func conditionLabel(c metav1.Condition) string {
	if c.Status == metav1.ConditionTrue {
		return "True"
	}
	return string(c.Status) + " (" + c.Reason + ")"
}

// routeConditions sums up Accepted and ResolvedRefs over every parent:
// True when every parent says so, else the first parent's failure.
func routeConditions(st gatewayv1.RouteStatus) (accepted, resolved string) {
	accepted, resolved = "Unknown", "Unknown"
	if len(st.Parents) == 0 {
		return
	}
	accepted, resolved = "True", "True"
	for _, p := range st.Parents {
		for _, c := range p.Conditions {
			if c.Status == metav1.ConditionTrue {
				continue
			}
			switch {
			case c.Type == "Accepted" && accepted == "True":
				accepted = conditionLabel(c)
			case c.Type == "ResolvedRefs" && resolved == "True":
				resolved = conditionLabel(c)
			}
		}
	}
	return
}

// routeNotes says, for every parent, each condition that is not True.
func routeNotes(kind, namespace, name string, st gatewayv1.RouteStatus) []string {
	var notes []string
	seen := map[string]bool{}
	for _, p := range st.Parents {
		for _, c := range p.Conditions {
			if c.Status == metav1.ConditionTrue {
				continue
			}
			n := fmt.Sprintf("%s %s/%s: %s: %s", strings.ToLower(kind), namespace, name, c.Reason, c.Message)
			if !seen[n] {
				seen[n] = true
				notes = append(notes, n)
			}
		}
	}
	return notes
}

func targetLabel(t v1alpha1.PolicyTargetRef) string {
	s := t.Kind + "/" + t.Name
	switch {
	case t.Port != 0:
		s += fmt.Sprintf(":%d", t.Port)
	case t.SectionName != "":
		s += ":" + t.SectionName
	}
	return s
}

// authzTargetLabel is an authorization object's scope: Service/NAME[:PORT],
// namespace or mesh.
func authzTargetLabel(namespace string, t *v1alpha1.AuthzTargetRef) string {
	switch {
	case t != nil && t.Port != 0:
		return fmt.Sprintf("Service/%s:%d", t.Name, t.Port)
	case t != nil:
		return "Service/" + t.Name
	case namespace == v1alpha1.MeshNamespace:
		return "mesh"
	}
	return "namespace"
}

// ancestorsAccepted is the Accepted condition of a policy status, and a
// note when it is not True.
func ancestorsAccepted(kind, namespace, name string, st gatewayv1.PolicyStatus) (string, []string) {
	return ancestorsCondition("Accepted", kind, namespace, name, st)
}

// jwksLabel is the state of each key set of a RequestAuthentication, in
// the order of its issuers: ok, pending, failed, no usable keys, or
// stale (fetch failing for AGE) while the last keys fetched are served.
func jwksLabel(now time.Time, sets []v1alpha1.JWKSStatus) string {
	if len(sets) == 0 {
		return "Unknown"
	}
	out := make([]string, 0, len(sets))
	for _, s := range sets {
		switch s.State {
		case v1alpha1.JWKSReady:
			out = append(out, "ok")
		case v1alpha1.JWKSStale:
			since := time.Time{}
			if s.FailingSince != nil {
				since = s.FailingSince.Time
			}
			out = append(out, "stale (fetch failing for "+age(now, since)+")")
		case v1alpha1.JWKSFailed:
			out = append(out, "failed")
		case v1alpha1.JWKSNoUsableKeys:
			out = append(out, "no usable keys")
		default:
			out = append(out, strings.ToLower(s.State))
		}
	}
	return strings.Join(out, ",")
}

// ancestorsCondition is a condition of a policy status, and a note when
// it is not True.
func ancestorsCondition(typ, kind, namespace, name string, st gatewayv1.PolicyStatus) (string, []string) {
	acc := "Unknown"
	var notes []string
	for _, a := range st.Ancestors {
		for _, c := range a.Conditions {
			if c.Type != typ {
				continue
			}
			acc = conditionLabel(c)
			if c.Status != metav1.ConditionTrue {
				notes = append(notes, fmt.Sprintf("%s %s/%s: %s: %s", kind, namespace, name, c.Reason, c.Message))
			}
		}
	}
	return acc, notes
}

// policySets lists the stanzas a TrafficPolicy sets.
func policySets(s v1alpha1.TrafficPolicySpec) string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"loadBalancer", s.LoadBalancer != nil}, {"connectionPool", s.ConnectionPool != nil},
		{"outlierDetection", s.OutlierDetection != nil}, {"retries", s.Retries != nil}, {"timeouts", s.Timeouts != nil},
		{"rateLimit", s.RateLimit != nil}, {"faults", s.Faults != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return orNone(out)
}

func getPseudo(ctx context.Context, c *Client, which, namespace, output string, w io.Writer) error {
	switch which {
	case "workloads":
		var l struct {
			Items []model.Workload `json:"items"`
		}
		if err := c.Raw(ctx, "/v1/workloads", &l); err != nil {
			return err
		}
		items := l.Items[:0]
		for _, wl := range l.Items {
			if namespace == "" || wl.Namespace == namespace {
				items = append(items, wl)
			}
		}
		if output == "json" || output == "yaml" {
			return writeAs(w, output, map[string]any{"items": items})
		}
		if len(items) == 0 {
			fmt.Fprintln(w, "No workloads registered.")
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		defer tw.Flush()
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tLABELS\tADDRESS\tINBOUND\tCONNECTED")
		for _, wl := range items {
			var in []string
			for _, p := range wl.Inbound {
				in = append(in, fmt.Sprintf("%d→%d/%s", p.Port, p.AppPort, p.Protocol))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", wl.Namespace, wl.Name, selector(wl.Labels), wl.Address, strings.Join(in, ","), wl.Connected)
		}
	case "proxies":
		var l struct {
			Items []xds.ProxyStatus `json:"items"`
		}
		if err := c.Raw(ctx, "/v1/proxies", &l); err != nil {
			return err
		}
		sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].NodeID < l.Items[j].NodeID })
		if output == "json" || output == "yaml" {
			return writeAs(w, output, map[string]any{"items": l.Items})
		}
		if len(l.Items) == 0 {
			fmt.Fprintln(w, "No proxies connected.")
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		defer tw.Flush()
		fmt.Fprintln(tw, "PROXY\tSYNCED\tLAST NACK")
		for _, p := range l.Items {
			synced := "yes"
			for typ, v := range p.Versions {
				if p.Acked[typ] != v {
					synced = "no"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.NodeID, synced, p.LastNACK)
		}
	}
	return nil
}

func writeAs(w io.Writer, format string, v any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return writeIndented(w, mustJSON(v))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func writeIndented(w io.Writer, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func selector(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newDeleteCmd(g *globals) *cobra.Command {
	var namespace string
	var files []string
	cmd := &cobra.Command{
		Use:     "delete (KIND NAME | -f FILE)",
		Short:   "Delete resources",
		Example: "  weft delete httproute catalog-canary -n shop\n  weft delete -f demo/config/route.yaml",
		Args:    cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			type target struct {
				k        *resource.Kind
				ns, name string
			}
			var targets []target
			switch {
			case len(files) > 0 && len(args) == 0:
				objs, err := readSources(files, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for _, o := range objs {
					k, err := resource.KindOf(o)
					if err != nil {
						return err
					}
					targets = append(targets, target{k, o.GetNamespace(), o.GetName()})
				}
			case len(args) == 2 && len(files) == 0:
				k, err := resource.LookupKind(args[0])
				if err != nil {
					return err
				}
				ns := namespace
				if ns == "" {
					ns = k.DefaultNamespace()
				}
				targets = append(targets, target{k, ns, args[1]})
			default:
				return errors.New("delete takes KIND NAME or -f FILE")
			}
			failed := 0
			for _, t := range targets {
				ref := strings.ToLower(t.k.Name) + "/" + t.name
				if err := c.Delete(cmd.Context(), t.k.Plural, t.ns, t.name); err != nil {
					var ae *APIError
					if errors.As(err, &ae) && ae.Status == 404 {
						fmt.Fprintf(g.errOut, "%s not found in namespace %q\n", ref, t.ns)
						failed++
						continue
					}
					return err
				}
				fmt.Fprintf(g.out, "%s deleted\n", ref)
			}
			if failed > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default \"default\")")
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "delete the objects in these files")
	return cmd
}

// nowFunc is the clock ages are computed against (fixed in golden tests).
var nowFunc = time.Now
