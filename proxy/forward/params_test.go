package forward

import (
	"net/http"
	"testing"
)

func TestWithoutParams(t *testing.T) {
	for in, want := range map[string]string{
		"/admin":                    "/admin",
		"/admin;x=1":                "/admin",
		"/admin;jsessionid=1/users": "/admin/users",
		"/a;b/c;d/":                 "/a/c/",
	} {
		if got := withoutParams(in); got != want {
			t.Errorf("withoutParams(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOnlyWebSocketUpgrades: an h2c (or any non-WebSocket) upgrade is
// turned into a plain request, so no tunnel can carry unchecked requests.
func TestOnlyWebSocketUpgrades(t *testing.T) {
	h := http.Header{"Upgrade": {"h2c"}, "Connection": {"Upgrade, HTTP2-Settings"}}
	if !isUpgrade(h) || isWebSocket(h) {
		t.Fatal("h2c upgrade not recognised as a non-WebSocket upgrade")
	}
	dropUpgrade(h)
	if isUpgrade(h) || h.Get("Upgrade") != "" || h.Get("Connection") != "HTTP2-Settings" {
		t.Fatalf("after dropUpgrade: %v", h)
	}
	if !isWebSocket(http.Header{"Upgrade": {"WebSocket"}}) {
		t.Fatal("websocket not recognised")
	}
}
