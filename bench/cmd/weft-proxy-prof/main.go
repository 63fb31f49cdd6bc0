// Command weft-proxy-prof is weft-proxy with profiling, for the benchmark
// only: the same sidecar.Main, wrapped in a CPU profile and followed by an
// allocation profile when it returns (on SIGTERM). Nothing is added to the
// proxy itself.
//
//	WEFTBENCH_PROFILE=/tmp/client weft-proxy-prof [weft-proxy flags]
//
// writes /tmp/client.cpu.pprof and /tmp/client.allocs.pprof.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/weftmesh/weft/proxy/sidecar"
)

func main() {
	prefix := os.Getenv("WEFTBENCH_PROFILE")
	if prefix == "" {
		os.Exit(sidecar.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	cpu, err := os.Create(prefix + ".cpu.pprof")
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy-prof:", err)
		os.Exit(1)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy-prof:", err)
		os.Exit(1)
	}
	code := sidecar.Main(os.Args[1:], os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	cpu.Close()
	if f, err := os.Create(prefix + ".allocs.pprof"); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	os.Exit(code)
}
