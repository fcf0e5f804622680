package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Config tunes a Store.
type Config struct {
	// BcryptCost is the cost of the password hashes made here.
	BcryptCost int
	// TokenTTL is how long a simple token lives unused.
	TokenTTL time.Duration
	// Token is the parsed --auth-token: the zero value hands out simple
	// tokens.
	Token TokenConfig
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) fill() {
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// HashPassword hashes a new password, on the member that took the
// request, before it is proposed: the hash, not the password, goes
// through raft and into every member's database.
func (s *Store) HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.passwords.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword verifies a user's password and returns the auth revision
// it was checked at. It runs outside the apply path: bcrypt takes tens of
// milliseconds on purpose, and nothing else waits for it.
func (s *Store) CheckPassword(user, password string) (uint64, error) {
	s.mu.RLock()
	enabled, rev, u := s.enabled, s.revision, s.users[user]
	s.mu.RUnlock()
	switch {
	case !enabled:
		return 0, ErrAuthNotEnabled
	case u == nil:
		return 0, ErrAuthFailed
	case u.Options != nil && u.Options.NoPassword:
		return 0, ErrNoPasswordUser
	}
	if !s.passwords.check(u.Password, password) {
		return 0, ErrAuthFailed
	}
	return rev, nil
}

// passwordCache remembers passwords bcrypt has verified, as a salted
// digest per stored hash, so that a script making a hundred calls with
// --user pays bcrypt once. A changed password has a new hash, which the
// cache has never seen.
type passwordCache struct {
	cost int

	once sync.Once
	salt [32]byte

	mu       sync.Mutex
	verified map[string][32]byte // stored hash -> digest of its password
}

func (c *passwordCache) digest(password string) [32]byte {
	c.once.Do(func() { _, _ = rand.Read(c.salt[:]) })
	return sha256.Sum256(append(c.salt[:], password...))
}

func (c *passwordCache) check(hash []byte, password string) bool {
	d := c.digest(password)
	c.mu.Lock()
	known, ok := c.verified[string(hash)]
	c.mu.Unlock()
	if ok {
		return subtle.ConstantTimeCompare(known[:], d[:]) == 1
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	c.mu.Lock()
	if c.verified == nil {
		c.verified = map[string][32]byte{}
	}
	c.verified[string(hash)] = d
	c.mu.Unlock()
	return true
}

// tokenProvider is one kind of token: simple tokens, which every member
// learns through raft, or JWTs, which carry their own proof. The store
// asks it who a token names; everything else about users stays the
// store's.
type tokenProvider interface {
	// replicated says whether a token exists only once an Authenticate
	// entry has applied on every member (simple), rather than being made
	// and checked without raft (jwt).
	replicated() bool
	// sign makes a token for user, whose password this member has just
	// checked and whose credential (Store.credential) is cred. Only a
	// kind that is not replicated signs.
	sign(user, cred string) (string, error)
	// assign records, as an Authenticate entry applies, that token was
	// given to user.
	assign(token, user string)
	// user names the user token was given to. credential is a user's
	// credential now (false once deleted), for kinds whose tokens must
	// still match it.
	user(token string, credential func(user string) (string, bool)) (string, bool)
	// forgetUser ends the tokens of a user deleted or given a new
	// password; clear ends every token as auth turns off.
	forgetUser(user string)
	clear()
}

// errReplicated is what sign answers for simple tokens: the caller must
// propose the token through raft instead.
var errReplicated = errors.New("auth: tokens of this kind are replicated through raft, not signed")

// simpleTokens are etcd's "simple" tokens: random strings the member that
// authenticated a user chose, handed to every member through raft with
// the user's name, each valid until unused for the TTL.
type simpleTokens struct {
	ttl time.Duration
	now func() time.Time

	// mu guards the map; a lookup, on every request, only shares it and
	// moves the token's expiry atomically.
	mu     sync.RWMutex
	tokens map[string]*tokenInfo
}

type tokenInfo struct {
	user    string
	expires atomic.Int64 // Unix nanoseconds
}

func newSimpleTokens(ttl time.Duration, now func() time.Time) *simpleTokens {
	return &simpleTokens{ttl: ttl, now: now, tokens: map[string]*tokenInfo{}}
}

// NewToken makes a token for user, to be proposed with the
// authentication: 16 random letters, then "." and a counter, as etcd's.
func NewToken(index uint64) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return fmt.Sprintf("%s.%d", b, index)
}

func (t *simpleTokens) replicated() bool { return true }

func (t *simpleTokens) sign(string, string) (string, error) { return "", errReplicated }

func (t *simpleTokens) assign(token, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti := &tokenInfo{user: user}
	ti.expires.Store(t.now().Add(t.ttl).UnixNano())
	t.tokens[token] = ti
}

// user is the user token was given to, and keeps the token alive for
// another TTL. A simple token does not go stale when permissions change:
// each request is checked against the permissions of its time. Deleting
// the user or changing its password forgets the token, so the credential
// is not needed.
func (t *simpleTokens) user(token string, _ func(string) (string, bool)) (string, bool) {
	t.mu.RLock()
	ti := t.tokens[token]
	t.mu.RUnlock()
	if ti == nil {
		return "", false
	}
	now := t.now()
	if now.UnixNano() > ti.expires.Load() {
		t.mu.Lock()
		if t.tokens[token] == ti {
			delete(t.tokens, token)
		}
		t.mu.Unlock()
		return "", false
	}
	ti.expires.Store(now.Add(t.ttl).UnixNano())
	return ti.user, true
}

func (t *simpleTokens) forgetUser(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tok, ti := range t.tokens {
		if ti.user == user {
			delete(t.tokens, tok)
		}
	}
}

func (t *simpleTokens) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.tokens)
}
