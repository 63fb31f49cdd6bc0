// Command weft-proxy is Weft's data plane: the sidecar beside every
// service instance. Run it directly, or through `weft run`, which hands
// over to it:
//
//	weft-proxy --control-plane 127.0.0.1:15010 --namespace shop --workload catalog-1 \
//	    --label app=catalog --label version=v1 --inbound 15006:8080 \
//	    --outbound 127.0.0.1:15001 --upstream reviews.shop=127.0.0.1:9002 \
//	    -- ./catalog --port 8080
//
// It imports no control-plane code: every import costs memory in every
// sidecar.
package main

import (
	"os"

	"github.com/weftmesh/weft/proxy/sidecar"
)

func main() {
	os.Exit(sidecar.Main(os.Args[1:], os.Stdout, os.Stderr))
}
