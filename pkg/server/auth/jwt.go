package auth

import (
	"crypto/subtle"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtTokens are JSON Web Tokens signed by the member that checked the
// password and verified by any member holding the public key, so a login
// needs no raft round and no member keeps a table of tokens.
//
// etcd puts the global auth revision in its JWTs and refuses a token
// whose revision is older than the store's, so every change of any user
// or role makes every JWT stale. Ours instead carry the user's credential
// (claim "cred", see Store.credential): a digest of the user's stored
// password hash, which every member holds the same through raft. A new
// password always has a new hash (bcrypt salts each one), and a deleted
// user has none, so a token keeps working across changes to other users
// and to roles, and stops on every member as soon as its user is deleted
// or given a new password, with no table of tokens to replicate or
// clean. Permissions are still read per request at the current auth
// revision, as for simple tokens.
type jwtTokens struct {
	method jwt.SigningMethod
	// signKey is nil on a member given only the public key.
	signKey   any
	verifyKey any
	ttl       time.Duration
	now       func() time.Time
	parser    *jwt.Parser

	// verified remembers the claims of tokens whose signature checked
	// out. A client sends the same token with every call, and checking
	// a signature costs 30 to 80µs of CPU (RS256 to ES256 on the 2-core
	// machine), as much as the rest of a small request; what a token
	// says never changes, so it is checked once. Expiry and the
	// credential are still checked on every call.
	mu       sync.RWMutex
	verified map[string]verifiedClaims
}

type verifiedClaims struct {
	user, cred string
	expires    time.Time
}

// maxVerified bounds the tokens remembered: clients hold one token at a
// time, so this is far more than the clients of one member, and tokens
// made up to fill it must each have been signed by us.
const maxVerified = 4096

// jwtClaims are what a token says. "username" is etcd's claim name, so
// tools that read etcd's tokens find the user where they expect it.
type jwtClaims struct {
	Username   string `json:"username"`
	Credential string `json:"cred"`
	jwt.RegisteredClaims
}

func newJWTTokens(c *jwtConfig, now func() time.Time) *jwtTokens {
	return &jwtTokens{
		method:    c.method,
		signKey:   c.signKey,
		verifyKey: c.verifyKey,
		ttl:       c.ttl,
		now:       now,
		verified:  map[string]verifiedClaims{},
		// Only the configured algorithm is accepted: a token naming
		// another ("none", or HS256 keyed with our public key) is
		// refused before its signature is looked at.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{c.method.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(now),
		),
	}
}

func (t *jwtTokens) replicated() bool { return false }

func (t *jwtTokens) sign(user, cred string) (string, error) {
	if t.signKey == nil {
		return "", ErrVerifyOnly
	}
	now := t.now()
	claims := jwtClaims{
		Username:   user,
		Credential: cred,
		RegisteredClaims: jwt.RegisteredClaims{
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		},
	}
	return jwt.NewWithClaims(t.method, claims).SignedString(t.signKey)
}

// assign has nothing to record: an Authenticate entry (from a member or
// a log of the time it handed out simple tokens) names a token no client
// of this member can be holding as a JWT.
func (t *jwtTokens) assign(string, string) {}

func (t *jwtTokens) user(token string, credential func(string) (string, bool)) (string, bool) {
	c, ok := t.verify(token)
	// Valid until its expiry, not at it (RFC 7519 4.1.4), as the parser
	// checks it.
	if !ok || !t.now().Before(c.expires) {
		return "", false
	}
	want, ok := credential(c.user)
	if !ok {
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(c.cred), []byte(want)) != 1 {
		return "", false
	}
	return c.user, true
}

// verify checks token's signature, algorithm and expiry, or finds that it
// did so before, and returns its claims.
func (t *jwtTokens) verify(token string) (verifiedClaims, bool) {
	t.mu.RLock()
	c, ok := t.verified[token]
	t.mu.RUnlock()
	if ok {
		return c, true
	}
	var claims jwtClaims
	_, err := t.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.verifyKey, nil })
	if err != nil || claims.Username == "" {
		return verifiedClaims{}, false
	}
	c = verifiedClaims{user: claims.Username, cred: claims.Credential, expires: claims.ExpiresAt.Time}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.verified) >= maxVerified {
		now := t.now()
		for tok, v := range t.verified {
			if !now.Before(v.expires) {
				delete(t.verified, tok)
			}
		}
		if len(t.verified) >= maxVerified {
			clear(t.verified)
		}
	}
	t.verified[token] = c
	return c, true
}

// A JWT ends on its own when its user's password hash changes or goes:
// there is no table to clean.
func (t *jwtTokens) forgetUser(string) {}

// Turning auth off ends JWTs too, as it ends simple tokens: enabling it
// again changes every credential (Store.credential), so there is nothing
// to clear here.
func (t *jwtTokens) clear() {}
