package registry_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/model"
	"github.com/weftmesh/weft/controlplane/registry"
	"github.com/weftmesh/weft/controlplane/store/bolt"
)

func openStore(t *testing.T, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wl(name string) *model.Workload {
	return &model.Workload{Name: name, Namespace: "shop", Address: "127.0.0.1", Labels: map[string]string{"app": "a"},
		Inbound: []model.InboundPort{{Port: 15006, AppPort: 8080, Protocol: "HTTP"}}}
}

func TestConnectDisconnectGrace(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	defer st.Close()
	var changes atomic.Int32
	r := registry.New(registry.Options{Store: st, Grace: 300 * time.Millisecond, OnChange: func() { changes.Add(1) }})
	defer r.Close()
	ctx := context.Background()
	if err := r.Connect(ctx, 1, wl("a-1")); err != nil {
		t.Fatal(err)
	}
	if got := r.List(); len(got) != 1 || !got[0].Connected {
		t.Fatalf("after connect: %+v", got)
	}
	r.Disconnect(1)
	if got := r.List(); len(got) != 1 || got[0].Connected {
		t.Fatalf("inside the grace period the workload stays, disconnected: %+v", got)
	}
	// Reconnecting inside the grace period keeps it.
	if err := r.Connect(ctx, 2, wl("a-1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := r.List(); len(got) != 1 || !got[0].Connected {
		t.Fatalf("after reconnect: %+v", got)
	}
	r.Disconnect(2)
	deadline := time.Now().Add(5 * time.Second)
	for len(r.List()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not removed after the grace period: %+v", r.List())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := st.Get(ctx, registry.Prefix+"shop/a-1"); err == nil {
		t.Fatal("registration still persisted after removal")
	}
	if changes.Load() < 4 {
		t.Fatalf("only %d change notifications", changes.Load())
	}
}

// TestTwoStreamsOneWorkload: a proxy reconnecting before its old stream is
// closed must not lose its registration when the old stream closes.
func TestTwoStreamsOneWorkload(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	defer st.Close()
	r := registry.New(registry.Options{Store: st, Grace: time.Hour})
	defer r.Close()
	ctx := context.Background()
	_ = r.Connect(ctx, 1, wl("a-1"))
	_ = r.Connect(ctx, 2, wl("a-1"))
	r.Disconnect(1)
	if got := r.List(); len(got) != 1 || !got[0].Connected {
		t.Fatalf("workload lost with its old stream: %+v", got)
	}
}

// TestLoadAfterRestart: a restarted control plane starts with the
// persisted workloads, disconnected, and drops those that do not return.
func TestLoadAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	st := openStore(t, path)
	r := registry.New(registry.Options{Store: st, Grace: time.Hour})
	ctx := context.Background()
	_ = r.Connect(ctx, 1, wl("a-1"))
	_ = r.Connect(ctx, 2, wl("b-1"))
	r.Close()
	st.Close()

	st = openStore(t, path)
	defer st.Close()
	r = registry.New(registry.Options{Store: st, Grace: 300 * time.Millisecond})
	defer r.Close()
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.List()
	if len(got) != 2 || got[0].Connected || got[1].Connected {
		t.Fatalf("after load: %+v", got)
	}
	_ = r.Connect(ctx, 7, wl("a-1"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = r.List()
		if len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b-1 not removed after its grace period: %d workloads", len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got[0].Name != "a-1" || !got[0].Connected {
		t.Fatalf("after grace: %+v", *got[0])
	}
}
