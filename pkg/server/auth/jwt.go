package auth

import (
	"crypto/subtle"
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
}

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
	var c jwtClaims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.verifyKey, nil })
	if err != nil || c.Username == "" {
		return "", false
	}
	want, ok := credential(c.Username)
	if !ok {
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(c.Credential), []byte(want)) != 1 {
		return "", false
	}
	return c.Username, true
}

// A JWT ends on its own when its user's password hash changes or goes:
// there is no table to clean.
func (t *jwtTokens) forgetUser(string) {}

// Turning auth off ends JWTs too, as it ends simple tokens: enabling it
// again changes every credential (Store.credential), so there is nothing
// to clear here.
func (t *jwtTokens) clear() {}
