package xdsconfig

import "testing"

// TestCanonicalPath: policy paths take the form sidecars normalise request
// paths to (proxy/normalize), so a rule cannot miss a request by spelling.
func TestCanonicalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/admin":           "/admin",
		"/files/café*":     "/files/caf%C3%A9*",
		"/a%7eb":           "/a~b",
		"/a%2db/%3a":       "/a-b/%3A",
		"*.json":           "*.json",
		"/x{y}":            "/x%7By%7D",
		"/semi;colon":      "/semi;colon",
		"/files/caf%c3%a9": "/files/caf%C3%A9",
	} {
		if got := canonicalPath(in); got != want {
			t.Errorf("canonicalPath(%q) = %q, want %q", in, got, want)
		}
	}
}
