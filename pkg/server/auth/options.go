package auth

import (
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultJWTTTL is how long a JWT lives when --auth-token names no ttl,
// as etcd's.
const DefaultJWTTTL = 5 * time.Minute

// TokenConfig is a parsed --auth-token: the kind of token the store hands
// out and, for JWTs, the keys and lifetime. The zero value means simple
// tokens.
type TokenConfig struct {
	jwt *jwtConfig
	// Ignored lists options that the chosen kind of token does not read.
	// etcd starts with them and only warns, so kvd does too: a
	// configuration that starts etcd starts kvd.
	Ignored []string
}

// Kind is "simple" or "jwt".
func (c TokenConfig) Kind() string {
	if c.jwt != nil {
		return "jwt"
	}
	return "simple"
}

// VerifyOnly says whether this member checks JWTs without signing any
// (it was given pub-key and no priv-key).
func (c TokenConfig) VerifyOnly() bool { return c.jwt != nil && c.jwt.signKey == nil }

type jwtConfig struct {
	method    jwt.SigningMethod
	signKey   any // nil: verify only
	verifyKey any
	ttl       time.Duration
}

// The JWT options, named as etcd names them.
const (
	optSignMethod = "sign-method"
	optPublicKey  = "pub-key"
	optPrivateKey = "priv-key"
	optTTL        = "ttl"
)

// jwtMethods are the algorithms --auth-token jwt accepts: etcd's, which
// are golang-jwt's less "none", which would accept unsigned tokens.
var jwtMethods = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

// ParseTokenConfig reads etcd's --auth-token syntax: a kind, then
// comma-separated key=value options. "simple" takes none; "jwt" takes
//
//	sign-method=<one of jwtMethods> (required)
//	priv-key=<PEM file>  signs tokens (for HS*, the file's bytes are the secret)
//	pub-key=<PEM file>   verifies them; alone, the member verifies only
//	ttl=<duration>       how long a token lives (default 5m)
//
// Key files are read and parsed here, so a bad one stops start-up with an
// error naming it.
func ParseTokenConfig(spec string) (TokenConfig, error) {
	kind, opts, err := splitTokenSpec(spec)
	if err != nil {
		return TokenConfig{}, err
	}
	switch kind {
	case "simple":
		return TokenConfig{Ignored: sortedKeys(opts)}, nil
	case "jwt":
		jc, err := parseJWTOptions(opts)
		if err != nil {
			return TokenConfig{}, fmt.Errorf("--auth-token jwt: %w", err)
		}
		var ignored []string
		for _, k := range sortedKeys(opts) {
			if k != optSignMethod && k != optPublicKey && k != optPrivateKey && k != optTTL {
				ignored = append(ignored, k)
			}
		}
		return TokenConfig{jwt: jc, Ignored: ignored}, nil
	case "":
		return TokenConfig{}, errors.New("--auth-token is empty: want simple, or jwt with its options")
	default:
		return TokenConfig{}, fmt.Errorf("--auth-token %q: unknown kind of token %q, want simple or jwt", spec, kind)
	}
}

// splitTokenSpec splits "kind,k=v,..." as etcd does: each option must be
// exactly one key and one value (so a path cannot hold "=" or ","), and
// no key may be given twice.
func splitTokenSpec(spec string) (string, map[string]string, error) {
	parts := strings.Split(spec, ",")
	opts := map[string]string{}
	for _, p := range parts[1:] {
		kv := strings.Split(p, "=")
		if len(kv) != 2 {
			return "", nil, fmt.Errorf("--auth-token option %q: want key=value", p)
		}
		if _, dup := opts[kv[0]]; dup {
			return "", nil, fmt.Errorf("--auth-token option %q is given twice", kv[0])
		}
		opts[kv[0]] = kv[1]
	}
	return parts[0], opts, nil
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// parseJWTOptions checks what etcd checks, and a few things etcd leaves
// to the first login: a ttl that is not positive, an algorithm that would
// accept unsigned tokens, an ECDSA key on the wrong curve.
func parseJWTOptions(opts map[string]string) (*jwtConfig, error) {
	c := &jwtConfig{ttl: DefaultJWTTTL}
	if s := opts[optTTL]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("ttl=%s: %w", s, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("ttl=%s: must be positive", s)
		}
		c.ttl = d
	}
	name := opts[optSignMethod]
	if name == "" {
		return nil, fmt.Errorf("sign-method is required, one of %s", strings.Join(jwtMethods, ", "))
	}
	if !slices.Contains(jwtMethods, name) {
		return nil, fmt.Errorf("sign-method=%s: want one of %s", name, strings.Join(jwtMethods, ", "))
	}
	c.method = jwt.GetSigningMethod(name)
	priv, err := readKeyFile(opts, optPrivateKey)
	if err != nil {
		return nil, err
	}
	pub, err := readKeyFile(opts, optPublicKey)
	if err != nil {
		return nil, err
	}
	if _, ok := c.method.(*jwt.SigningMethodHMAC); ok {
		// A shared secret both signs and verifies: every member needs it.
		if len(priv) == 0 {
			return nil, fmt.Errorf("sign-method=%s needs priv-key, the file holding the shared secret", name)
		}
		c.signKey, c.verifyKey = priv, priv
		return c, nil
	}
	if len(priv) == 0 && len(pub) == 0 {
		return nil, fmt.Errorf("sign-method=%s needs priv-key (to sign and verify) or pub-key (to verify only)", name)
	}
	parsePriv, parsePub := keyParsers(c.method)
	if len(priv) > 0 {
		signer, err := parsePriv(priv)
		if err != nil {
			return nil, fmt.Errorf("priv-key=%s: %w", opts[optPrivateKey], err)
		}
		c.signKey, c.verifyKey = signer, signer.Public()
	}
	if len(pub) > 0 {
		key, err := parsePub(pub)
		if err != nil {
			return nil, fmt.Errorf("pub-key=%s: %w", opts[optPublicKey], err)
		}
		if c.verifyKey != nil && !key.(interface{ Equal(crypto.PublicKey) bool }).Equal(c.verifyKey) {
			return nil, fmt.Errorf("pub-key=%s does not match priv-key=%s", opts[optPublicKey], opts[optPrivateKey])
		}
		c.verifyKey = key
	}
	if m, ok := c.method.(*jwt.SigningMethodECDSA); ok {
		if bits := c.verifyKey.(*ecdsa.PublicKey).Curve.Params().BitSize; bits != m.CurveBits {
			return nil, fmt.Errorf("sign-method=%s needs a %d-bit curve, the key's is %d bits", name, m.CurveBits, bits)
		}
	}
	return c, nil
}

func readKeyFile(opts map[string]string, opt string) ([]byte, error) {
	path := opts[opt]
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opt, err)
	}
	return b, nil
}

// keyParsers are golang-jwt's PEM parsers for the method's family of
// keys, each returning the types its signing method takes. The method
// is one of jwtMethods and not HMAC.
func keyParsers(m jwt.SigningMethod) (func([]byte) (crypto.Signer, error), func([]byte) (crypto.PublicKey, error)) {
	switch m.(type) {
	case *jwt.SigningMethodECDSA:
		return func(b []byte) (crypto.Signer, error) { return jwt.ParseECPrivateKeyFromPEM(b) },
			func(b []byte) (crypto.PublicKey, error) { return jwt.ParseECPublicKeyFromPEM(b) }
	case *jwt.SigningMethodEd25519:
		return func(b []byte) (crypto.Signer, error) {
				k, err := jwt.ParseEdPrivateKeyFromPEM(b)
				if err != nil {
					return nil, err
				}
				return k.(crypto.Signer), nil
			},
			func(b []byte) (crypto.PublicKey, error) { return jwt.ParseEdPublicKeyFromPEM(b) }
	default: // RSA, PKCS#1 v1.5 or PSS
		return func(b []byte) (crypto.Signer, error) { return jwt.ParseRSAPrivateKeyFromPEM(b) },
			func(b []byte) (crypto.PublicKey, error) { return jwt.ParseRSAPublicKeyFromPEM(b) }
	}
}
