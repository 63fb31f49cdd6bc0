package listener

import (
	"errors"
	"net"
	"testing"

	"github.com/weftmesh/weft/proxy/snapshot"
)

// TestAcceptAfterClose: a closed listener must answer with an error, never
// (nil, nil) — an HTTP server would serve the nil connection and crash.
func TestAcceptAfterClose(t *testing.T) {
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ml := newModeListener(ln, &acceptMode{accept: snapshot.AcceptPlain}, func() {}, false)
		ml.Close()
		c, err := ml.Accept()
		if c != nil || err == nil {
			t.Fatalf("Accept after Close = %v, %v", c, err)
		}
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	}
}
