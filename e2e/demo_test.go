package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemo runs `weft demo --for 8s` as the README says and checks that
// traffic flowed on every edge, with the canary split visible.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo mesh")
	}
	cmd := exec.Command(weftBin, "demo", "--for", "8s", "--interval", "3s", "--rps", "40")
	out, err := cmd.CombinedOutput()
	s := string(out)
	if err != nil {
		t.Fatalf("weft demo: %v\n%s", err, s)
	}
	sum := s[strings.Index(s, "Summary"):]
	for _, edge := range []string{"loadgen  web.shop", "web      catalog.shop  v1", "web      catalog.shop  v2", "catalog-v1  reviews.shop", "catalog-v2  reviews.shop"} {
		fields := strings.Fields(edge)
		re := regexp.MustCompile(`(?m)^\s+` + strings.Join(fields, `\s+`) + `\s+(?:v1\s+|-\s+)?(\d+)\s+100\.0%`)
		m := re.FindStringSubmatch(sum)
		if m == nil {
			t.Errorf("summary lacks a healthy %q edge:\n%s", edge, sum)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Errorf("edge %q carried no requests", edge)
		}
	}
	if !strings.Contains(sum, "Every hop was mutual TLS") {
		t.Errorf("the demo's hops were not all mutual TLS:\n%s", sum)
	}
	if !strings.Contains(s, "API http://127.0.66.1:15080") {
		t.Errorf("the demo does not print the control plane's address:\n%s", s)
	}
	if !strings.Contains(s, "Stopping") || !strings.Contains(s, "done.") {
		t.Errorf("the demo did not stop its processes:\n%s", s)
	}
	// No process of the demo survives it.
	if out, err := exec.Command("pgrep", "-f", "127.0.66.").CombinedOutput(); err == nil {
		t.Errorf("demo processes still running:\n%s", out)
	}
}
