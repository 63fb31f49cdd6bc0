package ca

import (
	"slices"
	"time"
)

// renewRetryDelay is how long the CA waits after a failed renewal of the
// intermediate before trying again (meanwhile it issues from the old one).
const renewRetryDelay = time.Minute

// Rotate starts a root rotation without downtime: it creates a new root and
// intermediate, adds the root to the bundle (which becomes [old, new]) and
// issues every later certificate from the new intermediate. Certificates
// from the old root keep verifying against the bundle until FinishRotation.
//
// Distribute the new bundle to every workload before their certificates
// from the new root are presented to them. Rotate fails with
// ErrRotationInProgress while a rotation is in progress, and with
// ErrExternal for an external PKI. The new state is persisted before it is
// used, so a restart resumes the rotation.
func (c *CA) Rotate() error {
	if c.dir == "" {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.gens) > 1 {
		return ErrRotationInProgress
	}
	old := c.gens[0]
	g, err := newGeneration(old.id+1, c.td, c.now())
	if err != nil {
		return err
	}
	if err := c.saveGeneration(g); err != nil {
		c.removeGeneration(g)
		return err
	}
	gens := []*generation{old, g}
	if err := c.saveState(gens); err != nil {
		return err
	}
	c.gens = gens
	c.snap.Store(snapshotOf(gens))
	c.writeBundle(gens)
	c.log.Info("ca: root rotation started", "retiring_root", PinOf(old.root), "issuing_root", PinOf(g.root),
		"issuing_root_expires", g.root.NotAfter)
	return nil
}

// FinishRotation ends a rotation: it drops the old root from the bundle
// and deletes its keys. Certificates from the old root stop verifying, so
// call it only when every workload holds a certificate from the new root
// (see RootOf) and the old ones are no longer presented. It fails with
// ErrNoRotation if no rotation is in progress, and with ErrExternal for an
// external PKI.
func (c *CA) FinishRotation() error {
	if c.dir == "" {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.gens) < 2 {
		return ErrNoRotation
	}
	old, cur := c.gens[0], c.gens[1]
	gens := []*generation{cur}
	if err := c.saveState(gens); err != nil {
		return err
	}
	c.gens = gens
	c.snap.Store(snapshotOf(gens))
	c.removeGeneration(old)
	c.writeBundle(gens)
	c.log.Info("ca: root rotation finished", "dropped_root", PinOf(old.root), "issuing_root", PinOf(cur.root))
	return nil
}

// issuerFor returns the issuer to sign with at now, re-certifying the
// managed intermediate first if its renewal is due.
func (c *CA) issuerFor(now time.Time) issuer {
	s := c.snap.Load()
	if renewalDue(s, now) {
		s = c.renew(now)
	}
	return s.issuer
}

// renewalDue reports whether the managed issuing intermediate expires
// within renewBefore and a renewal would extend it (it never outlives its
// root: an expiring root needs Rotate).
func renewalDue(s *snapshot, now time.Time) bool {
	if !s.managed {
		return false
	}
	inter := s.issuer.chain[0]
	return now.After(inter.NotAfter.Add(-renewBefore)) && inter.NotAfter.Before(s.issuer.root.NotAfter)
}

// renew re-certifies the issuing intermediate's key under its root with a
// fresh validity, so that leaves already issued still chain to it, and
// returns the snapshot to use. On failure it logs, keeps the current
// intermediate and retries no sooner than renewRetryDelay.
func (c *CA) renew(now time.Time) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snap.Load()
	if !renewalDue(s, now) || now.Before(c.renewRetry) {
		return s
	}
	last := len(c.gens) - 1
	cur := c.gens[last]
	inter, err := newIntermediate(cur.id, c.td, cur.root, cur.rootKey, cur.interKey.Public(), now)
	if err == nil {
		err = c.writeFile(fileName(interName, cur.id, certExt), encodeCerts(inter))
	}
	if err != nil {
		c.renewRetry = now.Add(renewRetryDelay)
		c.log.Warn("ca: could not renew the intermediate; still issuing from the old one",
			"error", err, "intermediate_expires", cur.inter.NotAfter)
		return s
	}
	next := *cur
	next.inter = inter
	gens := append(slices.Clone(c.gens[:last]), &next)
	c.gens = gens
	s = snapshotOf(gens)
	c.snap.Store(s)
	c.log.Info("ca: intermediate renewed", "generation", cur.id, "expires", inter.NotAfter)
	return s
}
