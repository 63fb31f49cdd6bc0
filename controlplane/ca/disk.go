package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The managed PKI's files in Dir.
const (
	stateFile  = "ca.json"
	bundleFile = "bundle.crt"
	rootName   = "root"
	interName  = "intermediate"
	certExt    = "crt"
	keyExt     = "key"
	tmpSuffix  = ".tmp" // of ".NAME.tmpRANDOM", a file being written

	stateVersion = 1
	dirMode      = 0o700
	fileMode     = 0o600
)

// diskState is ca.json: which generations are in the trust bundle.
type diskState struct {
	Version     int    `json:"version"`
	TrustDomain string `json:"trustDomain"`
	// Generations are the trusted generations, oldest first; the last one
	// issues. Two mean a rotation is in progress.
	Generations []int `json:"generations"`
}

// fileName names one of generation gen's files, e.g. root-1.key.
func fileName(name string, gen int, ext string) string {
	return fmt.Sprintf("%s-%d.%s", name, gen, ext)
}

// newGeneration creates generation id: a root and its intermediate.
func newGeneration(id int, td spiffeid.TrustDomain, now time.Time) (*generation, error) {
	rootKey, err := newKey()
	if err != nil {
		return nil, err
	}
	root, err := newRoot(id, td, rootKey, now)
	if err != nil {
		return nil, err
	}
	interKey, err := newKey()
	if err != nil {
		return nil, err
	}
	inter, err := newIntermediate(id, td, root, rootKey, interKey.Public(), now)
	if err != nil {
		return nil, err
	}
	return &generation{id: id, root: root, rootKey: rootKey, inter: inter, interKey: interKey}, nil
}

// openDir loads the managed PKI from c.dir, creating it on first start.
func (c *CA) openDir() ([]*generation, error) {
	if err := c.ensureDir(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(c.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c.initDir()
	}
	if err != nil {
		return nil, fmt.Errorf("ca: read state: %w", err)
	}
	var st diskState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("ca: decode %s: %w", stateFile, err)
	}
	switch {
	case st.Version != stateVersion:
		return nil, fmt.Errorf("ca: %s has version %d, this build reads %d", stateFile, st.Version, stateVersion)
	case st.TrustDomain != c.td.Name():
		return nil, fmt.Errorf("ca: %s holds a CA for trust domain %q, not %q", c.dir, st.TrustDomain, c.td.Name())
	case len(st.Generations) < 1 || len(st.Generations) > 2:
		return nil, fmt.Errorf("ca: %s lists %d generations, want 1 or 2", stateFile, len(st.Generations))
	case len(st.Generations) == 2 && st.Generations[0] >= st.Generations[1]:
		return nil, fmt.Errorf("ca: %s lists generations out of order: %v", stateFile, st.Generations)
	}
	gens := make([]*generation, 0, len(st.Generations))
	for _, id := range st.Generations {
		g, err := c.loadGeneration(id)
		if err != nil {
			return nil, err
		}
		gens = append(gens, g)
	}
	c.writeBundle(gens) // heal a bundle.crt lost or left stale by a crash
	for _, g := range gens {
		c.log.Info("ca: loaded root", "generation", g.id, "root", PinOf(g.root),
			"root_expires", g.root.NotAfter, "intermediate_expires", g.inter.NotAfter)
	}
	return gens, nil
}

// ensureDir creates c.dir, or tightens an existing one, to mode 0700.
func (c *CA) ensureDir() error {
	if err := os.MkdirAll(c.dir, dirMode); err != nil {
		return fmt.Errorf("ca: create dir: %w", err)
	}
	fi, err := os.Stat(c.dir)
	if err != nil {
		return fmt.Errorf("ca: dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("ca: %s is not a directory", c.dir)
	}
	if fi.Mode().Perm() != dirMode {
		if err := os.Chmod(c.dir, dirMode); err != nil {
			return fmt.Errorf("ca: restrict dir to owner: %w", err)
		}
		c.log.Warn("ca: set the key directory's mode to 0700", "dir", c.dir, "was", fi.Mode().Perm().String())
	}
	// Temporary files left by a crash in writeFile (they may hold keys).
	leftovers, _ := filepath.Glob(filepath.Join(c.dir, ".*"+tmpSuffix+"*"))
	for _, f := range leftovers {
		if err := os.Remove(f); err != nil {
			c.log.Warn("ca: could not remove a leftover temporary file", "file", f, "error", err)
		}
	}
	return nil
}

// initDir creates the first generation and persists it.
func (c *CA) initDir() ([]*generation, error) {
	g, err := newGeneration(1, c.td, c.now())
	if err != nil {
		return nil, err
	}
	if err := c.saveGeneration(g); err != nil {
		return nil, err
	}
	gens := []*generation{g}
	if err := c.saveState(gens); err != nil {
		return nil, err
	}
	c.writeBundle(gens)
	c.log.Info("ca: created root", "trust_domain", c.td.Name(), "root", PinOf(g.root),
		"root_expires", g.root.NotAfter, "intermediate_expires", g.inter.NotAfter)
	return gens, nil
}

// loadGeneration reads generation id's files and checks that they fit
// together: a self-signed CA root, an intermediate it signed, and the keys
// of both.
func (c *CA) loadGeneration(id int) (*generation, error) {
	g := &generation{id: id}
	var err error
	if g.root, err = c.readCert(fileName(rootName, id, certExt)); err != nil {
		return nil, err
	}
	if g.rootKey, err = c.readKey(fileName(rootName, id, keyExt)); err != nil {
		return nil, err
	}
	if g.inter, err = c.readCert(fileName(interName, id, certExt)); err != nil {
		return nil, err
	}
	if g.interKey, err = c.readKey(fileName(interName, id, keyExt)); err != nil {
		return nil, err
	}
	switch {
	case !g.root.IsCA || g.root.CheckSignatureFrom(g.root) != nil:
		return nil, fmt.Errorf("ca: generation %d: root is not a self-signed CA certificate", id)
	case !keyMatches(g.rootKey, g.root.PublicKey):
		return nil, fmt.Errorf("ca: generation %d: root key does not match the root certificate", id)
	case !g.inter.IsCA || g.inter.CheckSignatureFrom(g.root) != nil:
		return nil, fmt.Errorf("ca: generation %d: intermediate is not a CA certificate signed by the root", id)
	case !keyMatches(g.interKey, g.inter.PublicKey):
		return nil, fmt.Errorf("ca: generation %d: intermediate key does not match the intermediate certificate", id)
	}
	return g, nil
}

func (c *CA) readCert(name string) (*x509.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(c.dir, name))
	if err != nil {
		return nil, fmt.Errorf("ca: read certificate: %w", err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("ca: %s: %d certificates, want 1", name, len(certs))
	}
	return certs[0], nil
}

func (c *CA) readKey(name string) (crypto.Signer, error) {
	p := filepath.Join(c.dir, name)
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.log.Warn("ca: private key file is readable by others; chmod 600", "file", p, "mode", fi.Mode().Perm().String())
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("ca: read private key: %w", err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name, err)
	}
	return key, nil
}

// saveGeneration writes g's keys and certificates.
func (c *CA) saveGeneration(g *generation) error {
	rootKey, err := encodeKey(g.rootKey)
	if err != nil {
		return err
	}
	interKey, err := encodeKey(g.interKey)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{fileName(rootName, g.id, keyExt), rootKey},
		{fileName(rootName, g.id, certExt), encodeCerts(g.root)},
		{fileName(interName, g.id, keyExt), interKey},
		{fileName(interName, g.id, certExt), encodeCerts(g.inter)},
	} {
		if err := c.writeFile(f.name, f.data); err != nil {
			return err
		}
	}
	return nil
}

// removeGeneration deletes g's files; a failure is only logged (the files
// are no longer referenced).
func (c *CA) removeGeneration(g *generation) {
	for _, name := range []string{
		fileName(rootName, g.id, keyExt), fileName(rootName, g.id, certExt),
		fileName(interName, g.id, keyExt), fileName(interName, g.id, certExt),
	} {
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("ca: could not remove a retired file", "file", name, "error", err)
		}
	}
}

// saveState writes ca.json for gens: the commit point of every change.
func (c *CA) saveState(gens []*generation) error {
	st := diskState{Version: stateVersion, TrustDomain: c.td.Name()}
	for _, g := range gens {
		st.Generations = append(st.Generations, g.id)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("ca: encode state: %w", err)
	}
	return c.writeFile(stateFile, append(data, '\n'))
}

// writeBundle writes bundle.crt, the trusted roots, for operators. It is
// derived from the state, so a failure is only logged.
func (c *CA) writeBundle(gens []*generation) {
	var data []byte
	for _, g := range gens {
		data = append(data, encodeCerts(g.root)...)
	}
	if err := c.writeFile(bundleFile, data); err != nil {
		c.log.Warn("ca: could not write the trust bundle file", "error", err)
	}
}

// writeFile replaces c.dir/name with data atomically (temporary file,
// fsync, rename, fsync of the dir); the file is 0600.
func (c *CA) writeFile(name string, data []byte) (err error) {
	f, err := os.CreateTemp(c.dir, "."+name+tmpSuffix+"*")
	if err != nil {
		return fmt.Errorf("ca: write %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			err = fmt.Errorf("ca: write %s: %w", name, err)
		}
	}()
	if err = f.Chmod(fileMode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(c.dir, name)); err != nil {
		return err
	}
	return syncDir(c.dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
