package ca_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/ca"
)

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	c := openCA(t, dir, clk)
	oldRoot := c.Bundle()[0]
	oldLeaf := sign(t, c, catalog)

	if err := c.FinishRotation(); !errors.Is(err, ca.ErrNoRotation) {
		t.Fatalf("FinishRotation without a rotation: %v, want ErrNoRotation", err)
	}
	clk.Add(time.Hour)
	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rotate(); !errors.Is(err, ca.ErrRotationInProgress) {
		t.Fatalf("second Rotate: %v, want ErrRotationInProgress", err)
	}

	bundle := c.Bundle()
	if len(bundle) != 2 || !bundle[0].Equal(oldRoot) {
		t.Fatalf("bundle during rotation has %d roots, want [old, new]", len(bundle))
	}
	newRoot := bundle[1]
	if c.Pin() != ca.PinOf(newRoot) {
		t.Error("Pin() is not the new root's during the rotation")
	}
	wantStatus := []ca.RootInfo{
		{Pin: ca.PinOf(oldRoot), NotAfter: oldRoot.NotAfter, Retiring: true},
		{Pin: ca.PinOf(newRoot), NotAfter: newRoot.NotAfter, Issuing: true},
	}
	checkStatus(t, c, wantStatus)

	newLeaf := sign(t, c, catalog)
	if root, ok := c.RootOf(newLeaf[0]); !ok || !root.Equal(newRoot) {
		t.Error("a leaf issued after Rotate does not chain to the new root")
	}
	if root, ok := c.RootOf(oldLeaf[0]); !ok || !root.Equal(oldRoot) {
		t.Error("RootOf lost the old root's leaf")
	}
	if newLeaf[1].CheckSignatureFrom(newRoot) != nil {
		t.Error("the new intermediate is not signed by the new root")
	}
	for name, chain := range map[string][]*x509.Certificate{"old": oldLeaf, "new": newLeaf} {
		if _, err := verify(chain, c.Bundle(), clk.Now()); err != nil {
			t.Errorf("%s leaf does not verify against the rotation bundle: %v", name, err)
		}
	}

	// A restart resumes the rotation.
	reopened := openCA(t, dir, clk)
	checkStatus(t, reopened, wantStatus)
	if root, ok := reopened.RootOf(sign(t, reopened, catalog)[0]); !ok || !root.Equal(newRoot) {
		t.Error("after a restart, leaves do not chain to the new root")
	}

	if err := reopened.FinishRotation(); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, reopened, []ca.RootInfo{{Pin: ca.PinOf(newRoot), NotAfter: newRoot.NotAfter, Issuing: true}})
	if _, err := verify(oldLeaf, reopened.Bundle(), clk.Now()); err == nil {
		t.Error("an old-root leaf still verifies after FinishRotation")
	}
	if _, err := verify(newLeaf, reopened.Bundle(), clk.Now()); err != nil {
		t.Errorf("a new-root leaf does not verify after FinishRotation: %v", err)
	}
	if _, ok := reopened.RootOf(oldLeaf[0]); ok {
		t.Error("RootOf still knows the dropped root")
	}
	for _, name := range []string{"root-1.key", "root-1.crt", "intermediate-1.key", "intermediate-1.crt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after FinishRotation (%v)", name, err)
		}
	}
	if err := reopened.FinishRotation(); !errors.Is(err, ca.ErrNoRotation) {
		t.Errorf("second FinishRotation: %v, want ErrNoRotation", err)
	}

	final := openCA(t, dir, clk)
	checkStatus(t, final, []ca.RootInfo{{Pin: ca.PinOf(newRoot), NotAfter: newRoot.NotAfter, Issuing: true}})

	// And the next rotation starts from there.
	if err := final.Rotate(); err != nil {
		t.Fatal(err)
	}
	if n := len(final.Bundle()); n != 2 {
		t.Fatalf("bundle of %d roots after a second rotation, want 2", n)
	}
}

func checkStatus(t *testing.T, c *ca.CA, want []ca.RootInfo) {
	t.Helper()
	got := c.Status().Roots
	if len(got) != len(want) {
		t.Fatalf("status %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Pin != want[i].Pin || !got[i].NotAfter.Equal(want[i].NotAfter) ||
			got[i].Issuing != want[i].Issuing || got[i].Retiring != want[i].Retiring {
			t.Errorf("status root %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
