package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
)

// members are auth stores that apply the same changes, as the members of
// a cluster do through raft: each has its own records and its own
// --auth-token, and a password is hashed once, by the "proposing" one.
type members struct {
	t      *testing.T
	stores []*Store
	recs   []records
}

func newMembers(t *testing.T, now *time.Time, specs ...string) *members {
	t.Helper()
	m := &members{t: t}
	for _, spec := range specs {
		tc, err := ParseTokenConfig(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		cfg := Config{BcryptCost: bcrypt.MinCost, Token: tc}
		if now != nil {
			cfg.Now = func() time.Time { return *now }
		}
		m.stores = append(m.stores, New(cfg))
		m.recs = append(m.recs, records{})
	}
	m.do(func(s *Store, w records) error { return s.RoleAdd(w, RootRole) })
	m.do(func(s *Store, w records) error { return s.RoleAdd(w, "reader") })
	m.addUser(RootUser, "rootpw", RootRole)
	m.addUser("alice", "alicepw", "reader")
	m.do(func(s *Store, w records) error { return s.Enable(w) })
	return m
}

// do applies one change on every member.
func (m *members) do(op func(*Store, records) error) {
	m.t.Helper()
	for i, s := range m.stores {
		if err := op(s, m.recs[i]); err != nil {
			m.t.Fatal(err)
		}
	}
}

func (m *members) addUser(name, pw string, roles ...string) {
	m.t.Helper()
	h, err := m.stores[0].HashPassword(pw)
	if err != nil {
		m.t.Fatal(err)
	}
	m.do(func(s *Store, w records) error {
		return s.UserAdd(w, &pb.AuthUserAddRequest{Name: name, HashedPassword: h})
	})
	for _, r := range roles {
		m.do(func(s *Store, w records) error { return s.UserGrantRole(w, name, r) })
	}
}

func (m *members) changePassword(name, pw string) {
	m.t.Helper()
	h, err := m.stores[0].HashPassword(pw)
	if err != nil {
		m.t.Fatal(err)
	}
	m.do(func(s *Store, w records) error {
		return s.UserChangePassword(w, &pb.AuthUserChangePasswordRequest{Name: name, HashedPassword: h})
	})
}

// login authenticates at member i as the server does for JWTs: the
// password checked, then a token signed at the revision of the check.
func (m *members) login(i int, user, pw string) string {
	m.t.Helper()
	s := m.stores[i]
	rev, err := s.CheckPassword(user, pw)
	if err != nil {
		m.t.Fatal(err)
	}
	tok, err := s.SignToken(user, rev)
	if err != nil {
		m.t.Fatal(err)
	}
	return tok
}

// valid fails the test unless every member takes token as user's, at its
// current auth revision.
func (m *members) valid(what, token, user string) {
	m.t.Helper()
	for i, s := range m.stores {
		info, err := s.Identify(token)
		if err != nil || info != (Info{User: user, Revision: s.Revision()}) {
			m.t.Errorf("%s: member %d: Identify = %+v, %v; want %s at revision %d", what, i, info, err, user, s.Revision())
		}
	}
}

// invalid fails the test unless every member refuses token.
func (m *members) invalid(what, token string) {
	m.t.Helper()
	for i, s := range m.stores {
		if info, err := s.Identify(token); !errors.Is(err, ErrInvalidAuthToken) {
			m.t.Errorf("%s: member %d: Identify = %+v, %v; want ErrInvalidAuthToken", what, i, info, err)
		}
	}
}

func TestJWTEachAlgorithm(t *testing.T) {
	k := newTestKeys(t)
	for _, tc := range []struct{ method, priv, pub string }{
		{"RS256", k.rsa.priv, k.rsa.pub},
		{"RS512", k.rsa.priv, k.rsa.pub},
		{"PS256", k.rsa.priv, k.rsa.pub},
		{"ES256", k.ec.priv, k.ec.pub},
		{"ES384", k.ec384.priv, k.ec384.pub},
		{"EdDSA", k.ed.priv, k.ed.pub},
		{"HS256", k.secret, ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			signer := "jwt,sign-method=" + tc.method + ",priv-key=" + tc.priv
			members := []string{signer, signer}
			if tc.pub != "" {
				// A third member holds only the public key.
				members = append(members, "jwt,sign-method="+tc.method+",pub-key="+tc.pub)
			}
			m := newMembers(t, nil, members...)
			tok := m.login(0, "alice", "alicepw")
			m.valid("a token signed by member 0", tok, "alice")
			if parts := strings.Split(tok, "."); len(parts) != 3 {
				t.Fatalf("not a JWS compact token: %q", tok)
			}
			if tc.pub != "" {
				if _, err := m.stores[2].SignToken("alice", m.stores[2].Revision()); !errors.Is(err, ErrVerifyOnly) {
					t.Errorf("a login at the verify-only member: %v, want ErrVerifyOnly", err)
				}
			}
		})
	}
}

func TestJWTClaims(t *testing.T) {
	k := newTestKeys(t)
	now := time.Unix(1_700_000_000, 0)
	m := newMembers(t, &now, "jwt,sign-method=ES256,priv-key="+k.ec.priv+",ttl=90s")
	tok := m.login(0, "alice", "alicepw")
	var c jwtClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	if c.Username != "alice" || c.Credential == "" || !c.ExpiresAt.Equal(now.Add(90*time.Second)) || !c.IssuedAt.Equal(now) {
		t.Fatalf("claims %+v", c)
	}
	// The credential is a digest, never the bcrypt hash itself.
	if strings.Contains(tok, "$2a$") || strings.Contains(string(decodePayload(t, tok)), "$2a$") {
		t.Fatal("the token carries the password hash")
	}
}

func decodePayload(t *testing.T, tok string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWTExpiry(t *testing.T) {
	k := newTestKeys(t)
	now := time.Unix(1_700_000_000, 0)
	m := newMembers(t, &now, "jwt,sign-method=RS256,priv-key="+k.rsa.priv+",ttl=1m")
	tok := m.login(0, "alice", "alicepw")
	now = now.Add(time.Minute - time.Second)
	m.valid("a second before its expiry", tok, "alice")
	now = now.Add(time.Second)
	m.invalid("at its expiry (RFC 7519: on or after it, refused)", tok)
	// Unlike a simple token, use does not extend it: a new login does.
	m.valid("a new token", m.login(0, "alice", "alicepw"), "alice")
}

func TestJWTForgedOrForeign(t *testing.T) {
	k := newTestKeys(t)
	m := newMembers(t, nil, "jwt,sign-method=RS256,priv-key="+k.rsa.priv)
	tok := m.login(0, "alice", "alicepw")
	parts := strings.Split(tok, ".")

	other := newMembers(t, nil, "jwt,sign-method=RS256,priv-key="+k.rsa2.priv)
	m.invalid("signed with another key", other.login(0, "alice", "alicepw"))

	// The payload made to name root, under alice's signature.
	payload := strings.Replace(string(decodePayload(t, tok)), `"alice"`, `"root"`, 1)
	m.invalid("payload changed", parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(payload))+"."+parts[2])
	m.invalid("signature cut", parts[0]+"."+parts[1]+".")
	m.invalid("not a JWT", "abcdefghijklmnop.12")

	// Tokens whose header names another algorithm are refused whatever
	// they carry: unsigned ones, and ones keyed with the public key as
	// an HMAC secret.
	claims := jwtClaims{Username: "root", Credential: mustCredential(t, m.stores[0], RootUser),
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	m.invalid("alg none", none)
	pubPEM := readFile(t, k.rsa.pub)
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	m.invalid("HS256 keyed with the public key", hs)

	// A token without an expiry is refused too.
	claims.ExpiresAt = nil
	s := m.stores[0].tokens.(*jwtTokens)
	forever, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(s.signKey)
	if err != nil {
		t.Fatal(err)
	}
	m.invalid("no expiry", forever)
}

func mustCredential(t *testing.T, s *Store, user string) string {
	t.Helper()
	c, ok := s.credential(user)
	if !ok {
		t.Fatalf("no credential for %s", user)
	}
	return c
}

func TestJWTFollowsItsUser(t *testing.T) {
	k := newTestKeys(t)
	m := newMembers(t, nil,
		"jwt,sign-method=ES256,priv-key="+k.ec.priv,
		"jwt,sign-method=ES256,priv-key="+k.ec.priv+",pub-key="+k.ec.pub,
		"jwt,sign-method=ES256,pub-key="+k.ec.pub)
	m.addUser("bob", "bobpw", "reader")
	alice, bob := m.login(0, "alice", "alicepw"), m.login(1, "bob", "bobpw")

	// Changes that do not touch alice leave her token working, and each
	// request is still checked at the revision of now.
	m.do(func(s *Store, w records) error { return s.RoleAdd(w, "writer") })
	m.do(func(s *Store, w records) error {
		return s.RoleGrantPermission(w, "reader", &authpb.Permission{Key: []byte("k"), PermType: authpb.READ})
	})
	m.do(func(s *Store, w records) error { return s.UserGrantRole(w, "alice", "writer") })
	m.do(func(s *Store, w records) error { return s.UserRevokeRole(w, "alice", "writer") })
	m.addUser("carol", "carolpw")
	m.do(func(s *Store, w records) error { return s.UserDelete(w, "carol") })
	m.changePassword("bob", "bobpw2")
	m.valid("after unrelated changes", alice, "alice")
	for i, s := range m.stores {
		info, _ := s.Identify(alice)
		if err := s.CanRead(info, []byte("k"), nil); err != nil {
			t.Errorf("member %d: alice reads k with a role granted after her login: %v", i, err)
		}
	}

	// bob's password changed: his token ends everywhere; a login with
	// the new password works, the old password does not.
	m.invalid("after its user's password changed", bob)
	if _, err := m.stores[0].CheckPassword("bob", "bobpw"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("the old password: %v", err)
	}
	m.valid("after logging in again", m.login(0, "bob", "bobpw2"), "bob")

	// Deleted, alice's token ends everywhere, and stays ended when a
	// user of that name comes back with the same password.
	m.do(func(s *Store, w records) error { return s.UserDelete(w, "alice") })
	m.invalid("after its user was deleted", alice)
	m.addUser("alice", "alicepw", "reader")
	m.invalid("after its user came back", alice)

	// Turning auth off and on again ends every token, as it does simple
	// ones.
	root := m.login(0, RootUser, "rootpw")
	m.do(func(s *Store, w records) error { s.Disable(w); return nil })
	m.do(func(s *Store, w records) error { return s.Enable(w) })
	m.invalid("after auth was disabled and enabled", root)

	// A member that recovers from its database takes the same tokens.
	root = m.login(0, RootUser, "rootpw")
	r := New(Config{Token: m.stores[2].cfg.Token})
	if err := r.Recover(m.recs[2]); err != nil {
		t.Fatal(err)
	}
	if info, err := r.Identify(root); err != nil || info.User != RootUser {
		t.Errorf("a recovered member: %+v, %v", info, err)
	}
}

func TestSignTokenAfterAChange(t *testing.T) {
	k := newTestKeys(t)
	m := newMembers(t, nil, "jwt,sign-method=EdDSA,priv-key="+k.ed.priv)
	s := m.stores[0]
	checked, err := s.CheckPassword("alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	m.do(func(s *Store, w records) error { return s.RoleAdd(w, "other") })
	if _, err := s.SignToken("alice", checked); !errors.Is(err, ErrAuthOldRevision) {
		t.Fatalf("signing after the users changed: %v, want ErrAuthOldRevision", err)
	}
	// Simple tokens are not signed: they go through raft.
	simple := New(Config{})
	if simple.TokensReplicated() != true || s.TokensReplicated() != false {
		t.Fatal("TokensReplicated")
	}
}

func TestJWTVerifiedTokensBounded(t *testing.T) {
	k := newTestKeys(t)
	now := time.Unix(1_700_000_000, 0)
	m := newMembers(t, &now, "jwt,sign-method=HS256,priv-key="+k.secret+",ttl=1h")
	s := m.stores[0]
	jt := s.tokens.(*jwtTokens)
	m.invalid("a forged token", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
	if len(jt.verified) != 0 {
		t.Fatalf("a token that failed verification is remembered: %d", len(jt.verified))
	}
	first := m.login(0, "alice", "alicepw")
	m.valid("first token", first, "alice")
	// A token a second (the claims' resolution, so each is a different
	// string) for longer than the TTL: once full, the expired ones go.
	for range maxVerified + 10 {
		now = now.Add(time.Second)
		tok := m.login(0, "alice", "alicepw")
		if _, err := s.Identify(tok); err != nil {
			t.Fatal(err)
		}
		if len(jt.verified) > maxVerified {
			t.Fatalf("%d tokens remembered, more than %d", len(jt.verified), maxVerified)
		}
	}
	// Pruned of the expired, not emptied: the last hour's are kept.
	if n := len(jt.verified); n < 3600 || n >= maxVerified {
		t.Fatalf("%d tokens remembered, want the last hour's 3600 and a few", n)
	}
	m.invalid("the first token, expired", first)
}
