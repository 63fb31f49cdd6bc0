package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/controlplane/apiserver"
	"github.com/weftmesh/weft/controlplane/issuer"
	"github.com/weftmesh/weft/controlplane/token"
)

func (c *Client) post(ctx context.Context, path string, body any, out any) error {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	} else {
		b = []byte("{}")
	}
	return c.do(ctx, http.MethodPost, path, b, out)
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage join tokens (how a proxy proves who it is)"}
	var req apiserver.TokenRequest
	var quiet bool
	var output string
	create := &cobra.Command{
		Use:   "create --namespace NS --identity NAME [--ttl 24h]",
		Short: "Create a join token for one identity",
		Long: `Create a join token. A proxy started with it (and the CA pin printed here) gets
a certificate for spiffe://TRUST_DOMAIN/ns/NS/sa/NAME and nothing else. The token
is shown once; the control plane keeps only its hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp apiserver.TokenResponse
			if err := g.client().post(cmd.Context(), "/v1/tokens", req, &resp); err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(g.out, resp.Token)
				return nil
			}
			if output == "env" {
				fmt.Fprintf(g.out, "export WEFT_TOKEN=%s\nexport WEFT_CA_PIN=%s\nexport WEFT_TRUST_DOMAIN=%s\nexport WEFT_ISSUER=%s\nexport WEFT_IDENTITY=%s\nexport WEFT_NAMESPACE=%s\n",
					resp.Token, resp.CAPin, resp.TrustDomain, resp.Issuer, resp.Info.Identity, resp.Info.Namespace)
				return nil
			}
			fmt.Fprintf(g.out, "token:    %s\nid:       %s (revoke with: weft token revoke %s)\nidentity: spiffe://%s/ns/%s/sa/%s\nexpires:  %s\nca pin:   %s\n\nStart the workload's sidecar with:\n  weft run --control-plane %s --issuer %s --trust-domain %s \\\n    --namespace %s --identity %s --token %s --ca-pin %s \\\n    --workload NAME ... -- APP\n",
				resp.Token, resp.Info.ID, resp.Info.ID, resp.TrustDomain, resp.Info.Namespace, resp.Info.Identity,
				resp.Info.Expires.Format(time.RFC3339), resp.CAPin,
				resp.XDS, resp.Issuer, resp.TrustDomain, resp.Info.Namespace, resp.Info.Identity, resp.Token, resp.CAPin)
			return nil
		},
	}
	create.Flags().StringVarP(&req.Namespace, "namespace", "n", "default", "namespace the token grants")
	create.Flags().StringVar(&req.Identity, "identity", "", "identity the token grants (the SPIFFE ID's last segment)")
	create.Flags().StringVar(&req.TTL, "ttl", "24h", "how long the token can be used")
	create.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the token")
	create.Flags().StringVarP(&output, "output", "o", "text", "text, or env: export lines for eval (WEFT_TOKEN, WEFT_CA_PIN, ...), which weft run reads")
	_ = create.MarkFlagRequired("identity")

	list := &cobra.Command{
		Use:   "list",
		Short: "List join tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l struct {
				Items []token.Token `json:"items"`
			}
			if err := g.client().Raw(cmd.Context(), "/v1/tokens", &l); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 3, ' ', 0)
			defer tw.Flush()
			fmt.Fprintln(tw, "ID\tNAMESPACE\tIDENTITY\tEXPIRES\tREVOKED")
			for _, t := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", t.ID, t.Namespace, t.Identity, t.Expires.Format(time.RFC3339), t.Revoked)
			}
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a join token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().do(cmd.Context(), http.MethodDelete, "/v1/tokens/"+args[0], nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newCertsCmd(g *globals) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "certs",
		Short: "List every workload's certificate: identity, serial, expiry, root",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l struct {
				Items []issuer.Record `json:"items"`
			}
			if err := g.client().Raw(cmd.Context(), "/v1/certs", &l); err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				return writeAs(g.out, output, l)
			}
			var ca apiserver.CAStatus
			if err := g.client().Raw(cmd.Context(), "/v1/ca", &ca); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 3, ' ', 0)
			defer tw.Flush()
			fmt.Fprintln(tw, "NAMESPACE\tWORKLOAD\tSPIFFE ID\tSERIAL\tEXPIRES\tROOT")
			now := nowFunc()
			for _, r := range l.Items {
				root := short(r.Root)
				if r.Root == ca.Pin {
					root += " (issuing)"
				}
				exp := r.NotAfter.Format(time.RFC3339)
				if r.NotAfter.Before(now) {
					exp += " (expired)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Workload, r.SPIFFEID, short(r.Serial), exp, root)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "table, yaml or json")
	return c
}

func short(s string) string {
	if len(s) > 19 {
		return s[:19] + "…"
	}
	return s
}

func newCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Inspect the mesh CA and rotate its root"}
	printStatus := func(st *apiserver.CAStatus) {
		fmt.Fprintf(g.out, "trust domain: %s\nissuing root: %s\nissued: %d", st.TrustDomain, st.Pin, st.Issued)
		if len(st.Refused) > 0 {
			b, _ := json.Marshal(st.Refused)
			fmt.Fprintf(g.out, "  refused: %s", b)
		}
		fmt.Fprintln(g.out)
		tw := tabwriter.NewWriter(g.out, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "ROOT PIN\tEXPIRES\tROLE")
		for _, r := range st.Roots {
			role := "trusted"
			if r.Issuing {
				role = "trusted, issuing"
			}
			if r.Retiring {
				role = "trusted, retiring"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Pin, r.NotAfter.Format("2006-01-02"), role)
		}
		tw.Flush()
		if len(st.Pending) > 0 {
			fmt.Fprintf(g.out, "%d workloads still hold a certificate from an older root: %v\n", len(st.Pending), st.Pending)
		}
	}
	status := &cobra.Command{
		Use: "status", Short: "Show the trusted roots and what the CA issued", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st apiserver.CAStatus
			if err := g.client().Raw(cmd.Context(), "/v1/ca", &st); err != nil {
				return err
			}
			printStatus(&st)
			return nil
		},
	}
	var finish, force bool
	rotate := &cobra.Command{
		Use:   "rotate [--finish [--force]]",
		Short: "Rotate the root without downtime (see docs/security.md)",
		Long: `Root rotation in two steps:
  weft ca rotate           a new root joins the bundle and issues every new certificate;
                           proxies renew onto it at half their certificates' lifetime
  weft ca status           shows which workloads still hold old-root certificates
  weft ca rotate --finish  drops the old root once none does (--force to drop it anyway)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/ca/rotate"
			if finish {
				path += "/finish"
				if force {
					path += "?force=true"
				}
			}
			var st apiserver.CAStatus
			if err := g.client().post(cmd.Context(), path, nil, &st); err != nil {
				return err
			}
			printStatus(&st)
			return nil
		},
	}
	rotate.Flags().BoolVar(&finish, "finish", false, "finish the rotation: stop trusting the old root")
	rotate.Flags().BoolVar(&force, "force", false, "with --finish: even if workloads still hold old-root certificates")
	cmd.AddCommand(status, rotate)
	return cmd
}
