package resource_test

import (
	"os"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/resource"
)

// TestDocsExamples: every YAML example in docs/resources.md decodes and
// validates.
func TestDocsExamples(t *testing.T) {
	data, err := os.ReadFile("../../docs/resources.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "```yaml\n")[1:]
	if len(blocks) < 8 {
		t.Fatalf("only %d examples", len(blocks))
	}
	for i, b := range blocks {
		y := b[:strings.Index(b, "```")]
		objs, err := resource.DecodeYAML("example", []byte(y))
		if err != nil {
			t.Errorf("example %d: %v\n%s", i, err, y)
			continue
		}
		for _, o := range objs {
			if err := resource.Validate(o); err != nil {
				t.Errorf("example %d: %v", i, err)
			}
		}
	}
}
