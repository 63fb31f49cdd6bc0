package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Version is the build version, set by the linker.
var Version = "dev"

// DefaultServer is the control plane API the CLI talks to by default.
const DefaultServer = "http://127.0.0.1:15080"

type globals struct {
	server string
	out    io.Writer
	errOut io.Writer
}

func (g *globals) client() *Client { return NewClient(g.server) }

// NewRoot returns the weft command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{out: stdout, errOut: stderr}
	root := &cobra.Command{
		Use:   "weft",
		Short: "Weft: a service mesh — control plane, CLI and demo",
		Long: `Weft connects, secures, controls and observes the traffic between services,
with a sidecar proxy (weft-proxy) beside every instance and a control plane that
configures them over xDS.

  weft control                 start a control plane (embedded store)
  weft run [flags] -- APP      run APP with a sidecar proxy
  weft apply -f FILE           apply Services and HTTPRoutes
  weft get KIND [NAME]         show resources, workloads or proxies
  weft stat [SERVICE]          traffic per service: RPS, success, latency, mTLS
  weft top                     the same, live
  weft tap SERVICE             a sample of live requests
  weft authz-server --policy DIR   an ext_authz server that decides with Rego (OPA)
  weft demo                    run a whole demo mesh on this machine`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	server := os.Getenv("WEFT_SERVER")
	if server == "" {
		server = DefaultServer
	}
	root.PersistentFlags().StringVar(&g.server, "server", server, "control plane API address (env WEFT_SERVER)")
	root.AddCommand(
		newControlCmd(g),
		newApplyCmd(g),
		newGetCmd(g),
		newDeleteCmd(g),
		newRunCmd(g),
		newDemoCmd(g),
		newDemoAppCmd(g),
		newTokenCmd(g),
		newCertsCmd(g),
		newCACmd(g),
		newStatCmd(g),
		newTopCmd(g),
		newAuthzServerCmd(g),
		newTapCmd(g),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "weft", Version) },
		},
	)
	return root
}

// Main runs the CLI and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			return int(ec)
		}
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

// exitCode is an error that only carries an exit code (the command has
// already printed what went wrong).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

func asExit(err error, ec *exitCode) bool {
	if e, ok := err.(exitCode); ok {
		*ec = e
		return true
	}
	return false
}
