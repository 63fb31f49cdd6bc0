package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// ProxyBinary finds weft-proxy: beside the running weft binary first, then
// on PATH.
func ProxyBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			self = resolved
		}
		p := filepath.Join(filepath.Dir(self), "weft-proxy")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("weft-proxy")
	if err != nil {
		return "", errors.New("weft-proxy not found beside weft or on PATH (build both with `make build`)")
	}
	return p, nil
}

func newRunCmd(_ *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run [proxy flags] -- APP [ARGS...]",
		Short: "Run an app with a sidecar proxy (hands over to weft-proxy)",
		Long: `Run APP beside a Weft sidecar. weft replaces itself with weft-proxy (exec), so
nothing of the control plane's code stays resident per workload. The proxy
registers the workload, waits for its first config, then starts APP with
WEFT_OUTBOUND, WEFT_UPSTREAM_<HOST> and WEFT_ADMIN in its environment,
forwards signals to it and exits with its exit code.

Proxy flags (see weft-proxy --help):
  --control-plane ADDR   xDS address of the control plane (127.0.0.1:15010)
  --workload NAME        instance name, unique in its namespace (required)
  --namespace NS         namespace (default)
  --label K=V            labels Services select on (repeatable)
  --inbound P:APP[/PROTO] mesh traffic for APP port arrives on proxy port P
  --outbound ADDR        outbound HTTP listener (127.0.0.1:15001)
  --upstream HOST=ADDR   local port for one service (repeatable)
  --admin ADDR           admin listener (127.0.0.1:15000)
  --identity NAME        SPIFFE identity (default: the app label, else the workload)
  --token TOKEN          join token from weft token create (first certificate)
  --ca-pin sha256:HEX    pin of the mesh CA (or --ca-bundle FILE)
  --issuer ADDR          certificate issuer (control plane host, port 15012)
  --trust-domain TD      trust domain (weft.local)`,
		Example:            "  weft run --workload catalog-1 --namespace shop --label app=catalog --inbound 15006:8080 -- ./catalog",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "--" {
					break
				}
				if a == "-h" || a == "--help" {
					return cmd.Help()
				}
			}
			bin, err := ProxyBinary()
			if err != nil {
				return err
			}
			argv := append([]string{bin}, args...)
			if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
				return fmt.Errorf("exec %s: %w", bin, err)
			}
			return nil
		},
	}
}
