// Package demo runs a whole Weft mesh on this machine: a control plane,
// three services with a sidecar each — web → catalog (v1 and v2, split
// 90/10 by an HTTPRoute) → reviews — and a load generator with its own
// sidecar, every one a real process on its own loopback address
// (127.0.66.0/24). Every few seconds it prints the traffic per edge, as the
// proxies counted it.
//
// It also holds the demo services themselves (RunApp), which `weft run`
// starts behind their sidecars.
package demo
