// Command weft is Weft's control plane and CLI: `weft control`, `weft
// apply|get|delete`, `weft run` (hands over to weft-proxy) and `weft demo`.
package main

import (
	"os"

	"github.com/weftmesh/weft/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
