package token

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/weftmesh/weft/controlplane/store"
)

// Prefix is the store prefix of tokens: a token lives under Prefix + id.
const Prefix = "/tokens/"

// MaxTTL is the longest lifetime a token may have.
const MaxTTL = 365 * 24 * time.Hour

const (
	version   = "weft1"
	idLen     = 8  // characters: 5 random bytes
	secretLen = 32 // characters: 20 random bytes, 160 bits
	// createAttempts bounds the retries when a new id collides with an
	// existing one (1 in 2^40 per token).
	createAttempts = 3
	// updateAttempts bounds the retries of a revocation that races
	// another write of the same token.
	updateAttempts = 5
)

// encoding is lowercase base32 without padding: every 5 bytes make 8
// characters.
var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrNotFound: no token has the id.
var ErrNotFound = errors.New("token: not found")

// Reason says why a token was refused.
type Reason string

// Reasons of an InvalidError.
const (
	// ReasonMalformed: the string is not weft1.<id>.<secret>.
	ReasonMalformed Reason = "malformed"
	// ReasonUnknown: no token has the id (never created, or deleted).
	ReasonUnknown Reason = "unknown"
	// ReasonMismatch: the token exists but the secret is wrong.
	ReasonMismatch Reason = "mismatch"
	// ReasonExpired: the token's lifetime is over.
	ReasonExpired Reason = "expired"
	// ReasonRevoked: the token was revoked.
	ReasonRevoked Reason = "revoked"
)

// InvalidError is returned by Validate for a token that grants nothing; the
// caller maps it to a status (401). It never holds the secret.
type InvalidError struct {
	Reason Reason
	// ID is the token's id, when the string was well-formed enough to
	// have one; it is not secret.
	ID string
}

func (e *InvalidError) Error() string {
	if e.ID == "" {
		return "token: invalid token: " + string(e.Reason)
	}
	return "token: invalid token " + e.ID + ": " + string(e.Reason)
}

// Token is a join token's public description: everything but the secret.
type Token struct {
	ID string `json:"id"`
	// Namespace and Identity are what the token grants: a certificate for
	// that workload identity in that namespace.
	Namespace string    `json:"namespace"`
	Identity  string    `json:"identity"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Revoked   bool      `json:"revoked"`
}

// Expired reports whether the token's lifetime is over at now.
func (t Token) Expired(now time.Time) bool { return !now.Before(t.Expires) }

// record is a token as stored.
type record struct {
	Token
	// SecretSHA256 is the hex SHA-256 of the secret part.
	SecretSHA256 string `json:"secretSHA256"`
}

// The control plane's own identity, which no token may grant.
const (
	ReservedNamespace = "weft-system"
	ReservedIdentity  = "control-plane"
)

// Options configure a Manager.
type Options struct {
	// Now returns the current time (for tests). Default: time.Now.
	Now func() time.Time
}

// Manager creates, validates, lists and revokes join tokens kept in a
// store. It holds no state of its own and is safe for concurrent use; each
// method blocks only on the store (one or two calls).
type Manager struct {
	st  store.Store
	now func() time.Time
}

// New returns a Manager of the tokens in st.
func New(st store.Store, opts Options) *Manager {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{st: st, now: opts.Now}
}

// Create makes a token that grants identity in namespace for ttl (at most
// MaxTTL) and returns its secret string, weft1.<id>.<secret>, which is
// shown here once and stored nowhere, with its description. namespace must
// be a DNS label and identity a DNS subdomain name (as Kubernetes names
// them).
func (m *Manager) Create(ctx context.Context, namespace, identity string, ttl time.Duration) (string, Token, error) {
	if namespace == ReservedNamespace && identity == ReservedIdentity {
		return "", Token{}, fmt.Errorf("token: %s/%s is the control plane's own identity; no workload may have it", namespace, identity)
	}
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		return "", Token{}, fmt.Errorf("token: namespace %q: %s", namespace, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(identity); len(msgs) > 0 {
		return "", Token{}, fmt.Errorf("token: identity %q: %s", identity, strings.Join(msgs, "; "))
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", Token{}, fmt.Errorf("token: lifetime %s is out of range (0, %s]", ttl, MaxTTL)
	}
	now := m.now().UTC() // UTC also drops the monotonic reading, so the token compares equal once stored
	for range createAttempts {
		id, secret := random(5), random(20)
		sum := sha256.Sum256([]byte(secret))
		rec := record{
			Token: Token{
				ID:        id,
				Namespace: namespace,
				Identity:  identity,
				Created:   now,
				Expires:   now.Add(ttl),
			},
			SecretSHA256: hex.EncodeToString(sum[:]),
		}
		value, err := json.Marshal(rec)
		if err != nil {
			return "", Token{}, fmt.Errorf("token: encode: %w", err)
		}
		_, err = m.st.Put(ctx, Prefix+id, value, 0)
		if errors.Is(err, store.ErrConflict) {
			continue // the id is taken: draw another
		}
		if err != nil {
			return "", Token{}, fmt.Errorf("token: store %s: %w", id, err)
		}
		return version + "." + id + "." + secret, rec.Token, nil
	}
	return "", Token{}, fmt.Errorf("token: no free id after %d attempts", createAttempts)
}

// Validate checks a token string and returns what it grants. A token that
// grants nothing is an *InvalidError; any other error is the store's.
func (m *Manager) Validate(ctx context.Context, s string) (Token, error) {
	id, secret, ok := parse(s)
	if !ok {
		return Token{}, &InvalidError{Reason: ReasonMalformed}
	}
	rec, _, err := m.get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Token{}, &InvalidError{Reason: ReasonUnknown, ID: id}
	}
	if err != nil {
		return Token{}, err
	}
	want, err := hex.DecodeString(rec.SecretSHA256)
	if err != nil || len(want) != sha256.Size {
		return Token{}, fmt.Errorf("token: %s: stored hash is corrupt", id)
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return Token{}, &InvalidError{Reason: ReasonMismatch, ID: id}
	}
	switch {
	case rec.Revoked:
		return Token{}, &InvalidError{Reason: ReasonRevoked, ID: id}
	case rec.Expired(m.now()):
		return Token{}, &InvalidError{Reason: ReasonExpired, ID: id}
	}
	return rec.Token, nil
}

// Revoke makes the token with the given id invalid from now on; revoking a
// revoked token does nothing. It fails with ErrNotFound if there is no such
// token.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	if !validID(id) {
		// Not echoed: a caller might have passed a whole token by mistake.
		return fmt.Errorf("token: revoke: malformed id: %w", ErrNotFound)
	}
	for range updateAttempts {
		rec, rev, err := m.get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("token: revoke %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if rec.Revoked {
			return nil
		}
		rec.Revoked = true
		value, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("token: encode: %w", err)
		}
		_, err = m.st.Put(ctx, Prefix+id, value, rev)
		if errors.Is(err, store.ErrConflict) {
			continue // written meanwhile: read it again
		}
		if err != nil {
			return fmt.Errorf("token: revoke %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("token: revoke %s: %w", id, store.ErrConflict)
}

// List returns every token (expired and revoked ones too), oldest first.
func (m *Manager) List(ctx context.Context) ([]Token, error) {
	kvs, _, err := m.st.List(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("token: list: %w", err)
	}
	out := make([]Token, 0, len(kvs))
	for _, kv := range kvs {
		var rec record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("token: decode %s: %w", kv.Key, err)
		}
		out = append(out, rec.Token)
	}
	slices.SortFunc(out, func(a, b Token) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Lookup returns the token with the id (no secret), or ErrNotFound.
func (m *Manager) Lookup(ctx context.Context, id string) (Token, error) {
	if !validID(id) {
		return Token{}, ErrNotFound
	}
	rec, _, err := m.get(ctx, id)
	if err != nil {
		return Token{}, err
	}
	return rec.Token, nil
}

// get reads the token id and the revision it was read at; ErrNotFound
// (unwrapped) if there is none.
func (m *Manager) get(ctx context.Context, id string) (record, int64, error) {
	kv, err := m.st.Get(ctx, Prefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return record{}, 0, ErrNotFound
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("token: get %s: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return record{}, 0, fmt.Errorf("token: decode %s: %w", id, err)
	}
	return rec, kv.Revision, nil
}

// parse splits weft1.<id>.<secret>, checking each part's length and
// alphabet.
func parse(s string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, version+".")
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || !validID(id) || len(secret) != secretLen || !inAlphabet(secret) {
		return "", "", false
	}
	return id, secret, true
}

func validID(id string) bool { return len(id) == idLen && inAlphabet(id) }

func inAlphabet(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// random returns n random bytes in the token alphabet (8 characters for
// every 5 bytes).
func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return encoding.EncodeToString(b)
}
