// Command benchapp is the application behind every benchmarked path: an
// HTTP/1.1 server answering every request with the same 1 KiB body. The
// same binary and address serve the direct path and every proxy pair.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "0.0.0.0:8080", "comma-separated addresses to serve on")
	size := flag.Int("size", 1024, "response body size in bytes")
	flag.Parse()

	body := []byte(strings.Repeat("x", *size))
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"text/plain"}
		hdr["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})
	errc := make(chan error, 4)
	for _, addr := range strings.Split(*listen, ",") {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.ListenAndServe() }()
	}
	fmt.Fprintln(os.Stderr, "benchapp:", <-errc)
	os.Exit(1)
}
