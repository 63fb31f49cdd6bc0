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

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
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
		Long: `Apply Services and HTTPRoutes. Each object is validated by the control plane;
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
		Long: `Show resources (services, httproutes, mtlspolicies), registered workloads or connected proxies.
Without -n, lists every namespace.`,
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
					ns = resource.DefaultNamespace
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
	case "HTTPRoute":
		fmt.Fprintln(tw, "NAMESPACE\tNAME\tPARENTS\tRULES\tBACKENDS\tAGE")
		for _, raw := range items {
			var r gatewayv1.HTTPRoute
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			var parents []string
			for _, p := range r.Spec.ParentRefs {
				s := string(p.Name)
				if p.Port != nil {
					s += fmt.Sprintf(":%d", *p.Port)
				}
				parents = append(parents, s)
			}
			var backends []string
			for _, rule := range r.Spec.Rules {
				for _, b := range rule.BackendRefs {
					s := string(b.Name)
					if b.Weight != nil {
						s += fmt.Sprintf("(%d)", *b.Weight)
					}
					backends = append(backends, s)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Namespace, r.Name, strings.Join(parents, ","), len(r.Spec.Rules), strings.Join(backends, ","), age(now, r.CreationTimestamp.Time))
		}
	}
	return nil
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
					ns = resource.DefaultNamespace
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
