// Package ca is the mesh's certificate authority: it issues the X.509 SVIDs
// (SPIFFE identities) that proxies use for automatic mutual TLS, and the
// control plane's own serving certificates.
//
// By default the CA manages its own PKI in a directory (Options.Dir): on
// first start it creates a self-signed root (ECDSA P-256, 10 years) and an
// intermediate signed by it (ECDSA P-256, 1 year) that signs every workload
// certificate; later starts load them. Alternatively it takes an
// intermediate from an existing PKI (Options.CertFile, KeyFile, BundleFile)
// and never creates a root.
//
//	root (trust bundle) ──signs──▶ intermediate ──signs──▶ workload leaf
//	                                                   └──▶ control-plane serving cert
//
// Sign checks a proxy's CSR (its signature, its key, and that its only name
// is the SPIFFE ID being issued) and returns the leaf followed by the
// intermediate chain; the root is never part of a chain, peers get it from
// Bundle. A refused request is a *RequestError whose Reason says why.
//
// # Root rotation
//
// Rotate creates a new root and intermediate and switches issuing to them
// while the old root stays trusted: the bundle is [old, new]. Once every
// workload holds a certificate from the new root (RootOf tells which root a
// leaf chains to; Status lists the roots), FinishRotation drops the old root.
// The rotation state is persisted in Dir, so a restart resumes it.
//
// The intermediate is re-certified under its root (same key, new validity)
// when less than 30 days of it remain, so leaves already issued keep
// chaining to it; a new intermediate key comes with Rotate.
//
// # Files
//
// Dir (0700) holds ca.json (which generations exist and which one issues),
// root-N.crt, root-N.key, intermediate-N.crt, intermediate-N.key for each
// generation N, and bundle.crt (the trusted roots, for operators). Every
// file is 0600 and written atomically. Private keys never leave the CA: no
// method returns them and nothing logs them.
package ca
