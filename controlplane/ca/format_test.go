package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
)

// TestNoKeyMaterialInOutput formats and logs a CA (during a rotation, so it
// holds four keys) every way a caller might, and looks for any encoding of
// any of its private keys.
func TestNoKeyMaterialInOutput(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := Open(Options{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}

	var (
		secrets []string
		raw     string // a key as fmt prints it: proves the search would see a leak
	)
	c.mu.Lock()
	for _, g := range c.gens {
		for _, k := range []crypto.Signer{g.rootKey, g.interKey} {
			secrets = append(secrets, keyEncodings(t, k)...)
		}
	}
	raw = fmt.Sprintf("%+v", c.gens[0].rootKey)
	c.mu.Unlock()
	if len(secrets) != 4*5 {
		t.Fatalf("looking for %d encodings, want 5 for each of 4 keys", len(secrets))
	}
	if !containsAny(raw, secrets) {
		t.Fatal("the search does not recognise a key printed by fmt")
	}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs["Sprintf "+verb] = fmt.Sprintf(verb, c)
	}
	outputs["Sprint of a struct holding it"] = fmt.Sprintf("%+v", struct{ CA *CA }{c})
	logger.Info("ca", "ca", c)
	outputs["logs"] = logs.String()

	for name, out := range outputs {
		if containsAny(out, secrets) {
			t.Errorf("%s reveals key material:\n%s", name, out)
		}
	}
	if got := fmt.Sprintf("%+v", c); !strings.Contains(got, "weft.local") || !strings.Contains(got, c.Pin()) {
		t.Errorf("%%+v = %q, want the trust domain and the issuing pin", got)
	}
}

// keyEncodings returns the ways a private key could leak in text.
func keyEncodings(t *testing.T, k crypto.Signer) []string {
	t.Helper()
	der, err := encodeKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pemBody := strings.Split(string(der), "\n")[1] // the first base64 line of the PEM
	out := []string{pemBody, "PRIVATE KEY"}
	if ec, ok := k.(*ecdsa.PrivateKey); ok {
		d, err := ec.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		// D as fmt would print its big.Int (decimal), and as hex and base64.
		out = append(out, new(big.Int).SetBytes(d).String(), hex.EncodeToString(d), base64.StdEncoding.EncodeToString(d))
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
