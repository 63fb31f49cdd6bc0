// Package xdsmeta holds the conventions the control plane and the proxy
// share on top of standard xDS: the keys of the node metadata a proxy
// registers its workload with, the names of the listeners, routes and
// clusters the control plane generates, and the endpoint metadata keys.
//
// It is a leaf package with no dependencies beyond the standard library:
// the proxy imports it, so everything here is paid for in every sidecar.
package xdsmeta
