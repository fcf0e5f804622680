package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Config tunes a Store.
type Config struct {
	// BcryptCost is the cost of the password hashes made here.
	BcryptCost int
	// TokenTTL is how long a simple token lives unused.
	TokenTTL time.Duration
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

// simpleTokens are etcd's "simple" tokens: random strings the member that
// authenticated a user chose, handed to every member through raft with
// the user's name, each valid until unused for the TTL.
type simpleTokens struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]*tokenInfo
}

type tokenInfo struct {
	user    string
	expires time.Time
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

func (t *simpleTokens) assign(token, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens[token] = &tokenInfo{user: user, expires: t.now().Add(t.ttl)}
}

// user is the user token was given to, and keeps the token alive for
// another TTL. A simple token does not go stale when permissions change:
// each request is checked against the permissions of its time.
func (t *simpleTokens) user(token string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti := t.tokens[token]
	now := t.now()
	if ti == nil {
		return "", false
	}
	if now.After(ti.expires) {
		delete(t.tokens, token)
		return "", false
	}
	ti.expires = now.Add(t.ttl)
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
