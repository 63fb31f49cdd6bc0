// Package v1alpha1 holds Weft's own resource kinds (API group weft.dev):
// only what the Gateway API does not cover. In universal mode Service is
// the unit routes attach to (as a Kubernetes Service is under GAMMA).
//
// The types are plain data with JSON tags; they are decoded and validated
// by package api/resource and never reach the proxy.
package v1alpha1
