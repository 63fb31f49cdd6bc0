package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestOpaqueTCP: a TCP port is proxied as a byte stream over mutual TLS
// between the sidecars, both directions intact, end of stream carried.
func TestOpaqueTCP(t *testing.T) {
	cp := newControlPlane(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Echo until the client half-closes, then say goodbye.
				io.Copy(c, c)
				c.Write([]byte("|bye"))
			}()
		}
	}()
	port := portOf(t, ln.Addr().String())
	cp.apply(t, `apiVersion: weft.dev/v1alpha1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{port: 5432, targetPort: `+port+`, protocol: TCP}]
`)
	startSidecar(t, cp, sidecarOpts{workload: "db-1", namespace: "shop", identity: "db", labels: []string{"app=db"}, appPort: port, appProtocol: "TCP"})
	client := startSidecar(t, cp, sidecarOpts{workload: "web-1", namespace: "shop", identity: "web", upstreams: []string{"db.shop:5432"}})

	payload := make([]byte, 1<<20)
	rand.Read(payload)
	eventually(t, 15*time.Second, func() error {
		c, err := net.DialTimeout("tcp", client.upstreams["db.shop:5432"], time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		want := append(append([]byte{}, payload...), []byte("|bye")...)
		if !bytes.Equal(got, want) {
			return fmt.Errorf("got %d bytes back, want %d", len(got), len(want))
		}
		return nil
	})
	if !edgeWasMTLS(t, client, "db.shop") {
		t.Fatal("the TCP hop was not mutual TLS")
	}
}
