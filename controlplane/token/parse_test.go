package token

import "testing"

// FuzzParse checks that parse accepts exactly the strings it can rebuild,
// in the token alphabet, and never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"weft1.abcdefgh.abcdefghijklmnopqrstuvwxyz234567",
		"weft1.abcdefgh.abcdefghijklmnopqrstuvwxyz23456",
		"weft1.ABCDEFGH.abcdefghijklmnopqrstuvwxyz234567",
		"weft1..",
		"weft1.abcdefgh.abcdefghijklmnopqrstuvwxyz234567.x",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := parse(s)
		if !ok {
			if id != "" || secret != "" {
				t.Fatalf("parse(%q) refused but returned parts", s)
			}
			return
		}
		if version+"."+id+"."+secret != s || !validID(id) || len(secret) != secretLen || !inAlphabet(secret) {
			t.Fatalf("parse(%q) accepted id %q secret %q", s, id, secret)
		}
	})
}
