package token_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/controlplane/store"
	"github.com/weftmesh/weft/controlplane/store/bolt"
	"github.com/weftmesh/weft/controlplane/token"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t *testing.T, path string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func setup(t *testing.T) (*token.Manager, store.Store, *clock) {
	t.Helper()
	st := openStore(t, filepath.Join(t.TempDir(), "weft.db"))
	clk := &clock{t: t0}
	return token.New(st, token.Options{Now: clk.Now}), st, clk
}

func create(t *testing.T, m *token.Manager, ttl time.Duration) (string, token.Token) {
	t.Helper()
	secret, tok, err := m.Create(context.Background(), "shop", "catalog", ttl)
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

// wrong changes the last character of a token's secret.
func wrong(s string) string {
	last := byte('a')
	if s[len(s)-1] == 'a' {
		last = 'b'
	}
	return s[:len(s)-1] + string(last)
}

// secretPart is the <secret> of weft1.<id>.<secret>.
func secretPart(s string) string { return s[strings.LastIndexByte(s, '.')+1:] }

var format = regexp.MustCompile(`^weft1\.([a-z2-7]{8})\.[a-z2-7]{32}$`)

func TestCreateAndValidate(t *testing.T) {
	m, _, clk := setup(t)
	secret, tok, err := m.Create(context.Background(), "shop", "catalog.v2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	match := format.FindStringSubmatch(secret)
	if match == nil {
		t.Fatalf("token %q does not read weft1.<8 base32>.<32 base32>", secret)
	}
	want := token.Token{ID: match[1], Namespace: "shop", Identity: "catalog.v2", Created: t0, Expires: t0.Add(time.Hour)}
	if tok != want {
		t.Fatalf("Create returned %+v, want %+v", tok, want)
	}
	clk.Add(59 * time.Minute)
	got, err := m.Validate(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Validate returned %+v, want %+v", got, want)
	}
	if other, _ := create(t, m, time.Hour); other == secret {
		t.Fatal("two tokens are the same")
	}
}

func TestValidateRefuses(t *testing.T) {
	m, _, clk := setup(t)
	ctx := context.Background()
	good, tok := create(t, m, time.Hour)
	wrongSecret := wrong(good)
	unknown := "weft1.aaaaaaaa." + secretPart(good)

	revoked, revokedTok := create(t, m, time.Hour)
	if err := m.Revoke(ctx, revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	revokedWrong := wrong(revoked)

	expiring, expiringTok := create(t, m, time.Minute)
	expiringWrong := wrong(expiring)
	clk.Add(time.Minute) // expiring's last instant is over

	for _, tc := range []struct {
		name   string
		secret string
		want   token.Reason
		wantID string
	}{
		{"wrong secret", wrongSecret, token.ReasonMismatch, tok.ID},
		{"unknown id", unknown, token.ReasonUnknown, "aaaaaaaa"},
		{"revoked", revoked, token.ReasonRevoked, revokedTok.ID},
		{"revoked, wrong secret: says nothing of the revocation", revokedWrong, token.ReasonMismatch, revokedTok.ID},
		{"expired", expiring, token.ReasonExpired, expiringTok.ID},
		{"expired, wrong secret", expiringWrong, token.ReasonMismatch, expiringTok.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Validate(ctx, tc.secret)
			var ie *token.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate: %v, want an *InvalidError", err)
			}
			if ie.Reason != tc.want || ie.ID != tc.wantID {
				t.Errorf("refused with %q for %q, want %q for %q", ie.Reason, ie.ID, tc.want, tc.wantID)
			}
			if msg := err.Error(); strings.Contains(msg, secretPart(tc.secret)) || !strings.HasPrefix(msg, "token: ") {
				t.Errorf("error %q echoes the secret or lacks the token: prefix", msg)
			}
		})
	}
	if _, err := m.Validate(ctx, good); err != nil {
		t.Errorf("the good token stopped validating: %v", err)
	}
}

func TestValidateMalformed(t *testing.T) {
	m, _, _ := setup(t)
	good, tok := create(t, m, time.Hour)
	sec := secretPart(good)
	for _, tc := range []struct{ name, secret string }{
		{"empty", ""},
		{"version only", "weft1"},
		{"empty parts", "weft1.."},
		{"other version", "weft2." + tok.ID + "." + sec},
		{"no version", tok.ID + "." + sec},
		{"upper case", strings.ToUpper(good)},
		{"short id", "weft1." + tok.ID[:7] + "." + sec},
		{"long id", "weft1." + tok.ID + "a." + sec},
		{"short secret", good[:len(good)-1]},
		{"long secret", good + "a"},
		{"extra part", good + ".a"},
		{"digit outside base32", "weft1." + tok.ID + "." + sec[:31] + "1"},
		{"trailing newline", good + "\n"},
		{"bearer prefix", "Bearer " + good},
		{"non-ASCII", "weft1." + tok.ID + "." + sec[:30] + "é"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Validate(context.Background(), tc.secret)
			var ie *token.InvalidError
			if !errors.As(err, &ie) || ie.Reason != token.ReasonMalformed || ie.ID != "" {
				t.Fatalf("Validate: %v, want malformed with no id", err)
			}
			if strings.Contains(err.Error(), sec[:8]) {
				t.Errorf("error %q echoes the input", err)
			}
		})
	}
}

func TestCreateValidatesInput(t *testing.T) {
	m, _, _ := setup(t)
	for _, tc := range []struct {
		name, namespace, identity string
		ttl                       time.Duration
		want                      string
	}{
		{"empty namespace", "", "catalog", time.Hour, "namespace"},
		{"upper-case namespace", "Shop", "catalog", time.Hour, "namespace"},
		{"dotted namespace", "shop.eu", "catalog", time.Hour, "namespace"},
		{"long namespace", strings.Repeat("a", 64), "catalog", time.Hour, "namespace"},
		{"empty identity", "shop", "", time.Hour, "identity"},
		{"identity with a slash", "shop", "sa/catalog", time.Hour, "identity"},
		{"identity starting with a dash", "shop", "-catalog", time.Hour, "identity"},
		{"zero ttl", "shop", "catalog", 0, "lifetime"},
		{"negative ttl", "shop", "catalog", -time.Hour, "lifetime"},
		{"ttl over a year", "shop", "catalog", token.MaxTTL + time.Second, "lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := m.Create(context.Background(), tc.namespace, tc.identity, tc.ttl)
			if err == nil || !strings.HasPrefix(err.Error(), "token: "+tc.want) {
				t.Fatalf("Create: %v, want an error about the %s", err, tc.want)
			}
		})
	}
	if _, _, err := m.Create(context.Background(), "shop", "catalog", token.MaxTTL); err != nil {
		t.Errorf("Create with MaxTTL: %v", err)
	}
	if toks, err := m.List(context.Background()); err != nil || len(toks) != 1 {
		t.Errorf("refused tokens were stored: %d tokens, %v", len(toks), err)
	}
}

func TestStoredValueHasNoSecret(t *testing.T) {
	m, st, _ := setup(t)
	secret, tok := create(t, m, time.Hour)
	kv, err := st.Get(context.Background(), token.Prefix+tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(kv.Value), secretPart(secret)) {
		t.Fatalf("stored value %s contains the secret", kv.Value)
	}
	var stored map[string]any
	if err := json.Unmarshal(kv.Value, &stored); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secretPart(secret)))
	if stored["secretSHA256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("stored hash %v, want the SHA-256 of the secret part", stored["secretSHA256"])
	}
	for _, field := range []string{"id", "namespace", "identity", "created", "expires", "revoked"} {
		if _, ok := stored[field]; !ok {
			t.Errorf("stored value lacks %q: %s", field, kv.Value)
		}
	}
}

func TestRevoke(t *testing.T) {
	m, _, _ := setup(t)
	ctx := context.Background()
	secret, tok := create(t, m, time.Hour)
	if err := m.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, tok.ID); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	var ie *token.InvalidError
	if _, err := m.Validate(ctx, secret); !errors.As(err, &ie) || ie.Reason != token.ReasonRevoked {
		t.Errorf("Validate after Revoke: %v, want revoked", err)
	}
	if err := m.Revoke(ctx, "aaaaaaaa"); !errors.Is(err, token.ErrNotFound) {
		t.Errorf("Revoke of an unknown id: %v, want ErrNotFound", err)
	}
	err := m.Revoke(ctx, secret) // a whole token passed as an id
	if !errors.Is(err, token.ErrNotFound) || strings.Contains(err.Error(), secretPart(secret)) {
		t.Errorf("Revoke(token string): %v, want ErrNotFound without the secret", err)
	}
}

func TestList(t *testing.T) {
	m, _, clk := setup(t)
	ctx := context.Background()
	if toks, err := m.List(ctx); err != nil || len(toks) != 0 {
		t.Fatalf("List of an empty store: %v, %v", toks, err)
	}
	var secrets []string
	var want []token.Token
	for range 3 {
		s, tok := create(t, m, time.Hour)
		secrets, want = append(secrets, s), append(want, tok)
		clk.Add(time.Second)
	}
	if err := m.Revoke(ctx, want[1].ID); err != nil {
		t.Fatal(err)
	}
	want[1].Revoked = true

	got, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List returned %d tokens, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("token %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	out, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(out), secretPart(s)) {
			t.Fatalf("listed tokens contain a secret: %s", out)
		}
	}
	if !got[0].Expired(t0.Add(time.Hour)) || got[0].Expired(t0.Add(time.Hour-time.Nanosecond)) {
		t.Error("Expired is wrong at the boundary")
	}
}

func TestTokensSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weft.db")
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	secret, want, err := token.New(st, token.Options{Now: clk.Now}).Create(context.Background(), "shop", "catalog", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := token.New(openStore(t, path), token.Options{Now: clk.Now}).Validate(context.Background(), secret)
	if err != nil || got != want {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, want)
	}
}

func TestConcurrentUse(t *testing.T) {
	m, _, _ := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				secret, tok, err := m.Create(ctx, "shop", "catalog", time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := m.Validate(ctx, secret); err != nil {
					t.Error(err)
				}
				if err := m.Revoke(ctx, tok.ID); err != nil {
					t.Error(err)
				}
				if _, err := m.List(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	toks, err := m.List(ctx)
	if err != nil || len(toks) != 20 {
		t.Fatalf("%d tokens, %v; want 20", len(toks), err)
	}
}
