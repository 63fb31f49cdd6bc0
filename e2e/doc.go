// Package e2e holds Weft's end-to-end tests: real `weft` and `weft-proxy`
// processes (built with -race by TestMain) on loopback, with real HTTP and
// gRPC backends.
package e2e
