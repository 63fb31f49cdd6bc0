// Package model is the control plane's internal view of the mesh: the
// Services, routes and workloads that configuration is generated from,
// holding only the fields generation uses. API objects are converted into
// it once (FromObjects); a State is immutable once built and may be shared
// by goroutines.
package model
