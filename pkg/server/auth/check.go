package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"

	"go.etcd.io/etcd/api/v3/authpb"
)

// Info is who a request comes from: the user its token names, and the
// auth revision the permissions were read at. The zero Info is a request
// without a user.
type Info struct {
	User     string
	Revision uint64
}

type infoKey struct{}

// WithInfo returns ctx carrying info.
func WithInfo(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFrom is the Info ctx carries; the zero Info when none.
func InfoFrom(ctx context.Context) Info {
	info, _ := ctx.Value(infoKey{}).(Info)
	return info
}

// Identify says who token belongs to. With auth disabled every request
// is allowed, token or not; with it enabled, a request without a token
// has no user (and is refused by every check), and an unknown or
// expired token is refused at once, so the client logs in again.
func (s *Store) Identify(token string) (Info, error) {
	s.mu.RLock()
	enabled, rev := s.enabled, s.revision
	s.mu.RUnlock()
	if !enabled || token == "" {
		return Info{}, nil
	}
	user, ok := s.tokens.user(token, s.credential)
	if !ok {
		return Info{}, ErrInvalidAuthToken
	}
	return Info{User: user, Revision: rev}, nil
}

// credential is what a self-contained token binds itself to: a digest of
// the user's stored password hash and of the revision auth was last
// enabled at. Every member computes the same one from what raft gave it;
// it changes when the password does (a new bcrypt hash, freshly salted)
// and when auth is turned off and on again (tokens end with a disable, as
// simple tokens do), and not when other users or roles change. A deleted
// user, or one without a password, has none. The digest, not the hash,
// goes into tokens, whose claims whoever holds them can read: a bcrypt
// hash would let them guess the password offline.
func (s *Store) credential(user string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.credentialOf(s.users[user])
}

// credentialOf is u's credential; the caller holds mu.
func (s *Store) credentialOf(u *authpb.User) (string, bool) {
	if u == nil || (u.Options != nil && u.Options.NoPassword) || len(u.Password) == 0 {
		return "", false
	}
	h := sha256.New()
	h.Write([]byte("kvd token credential\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, s.enabledAt))
	h.Write(u.Password)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16]), true
}

// TokensReplicated says whether a token must be proposed through raft
// (simple tokens) rather than signed by the member that checked the
// password (JWT).
func (s *Store) TokensReplicated() bool { return s.tokens.replicated() }

// SignToken makes a self-contained token (a JWT) for user, whose password
// was checked at auth revision checked. It needs no raft round, so it
// refuses with ErrAuthOldRevision when the users changed since the check
// (the caller checks the password again, against the users of now): a
// token is never signed on the strength of a password that an applied
// change has replaced.
func (s *Store) SignToken(user string, checked uint64) (string, error) {
	s.mu.RLock()
	enabled, rev := s.enabled, s.revision
	cred, ok := s.credentialOf(s.users[user])
	s.mu.RUnlock()
	switch {
	case !enabled:
		return "", ErrAuthNotEnabled
	case rev != checked:
		return "", ErrAuthOldRevision
	case !ok:
		return "", ErrAuthFailed
	}
	return s.tokens.sign(user, cred)
}

// Authenticate records, as the entry carrying it applies, that token was
// given to user, whose password the proposing member checked.
func (s *Store) Authenticate(user, token string) error {
	s.mu.RLock()
	enabled, u := s.enabled, s.users[user]
	s.mu.RUnlock()
	switch {
	case !enabled:
		return ErrAuthNotEnabled
	case u == nil || (u.Options != nil && u.Options.NoPassword):
		return ErrAuthFailed
	}
	s.tokens.assign(token, user)
	return nil
}

// RequireUser refuses a request without a user while auth is enabled.
func (s *Store) RequireUser(info Info) error {
	if s.Enabled() && info.User == "" {
		return ErrUserEmpty
	}
	return nil
}

// IsAdmin allows what only the root role may do.
func (s *Store) IsAdmin(info Info) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.enabled {
		return nil
	}
	if info.User == "" {
		return ErrUserEmpty
	}
	p := s.perms[info.User]
	switch {
	case p == nil:
		return ErrUserNotFound
	case !p.root:
		return ErrPermissionDenied
	}
	return nil
}

// CanRead allows reading [key, end) (key alone when end is empty; every
// key from key on when end is "\x00").
func (s *Store) CanRead(info Info, key, end []byte) error {
	return s.permitted(info, key, end, false)
}

// CanWrite allows writing [key, end), as CanRead names ranges.
func (s *Store) CanWrite(info Info, key, end []byte) error {
	return s.permitted(info, key, end, true)
}

func (s *Store) permitted(info Info, key, end []byte, write bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case !s.enabled:
		return nil
	case info.User == "" || info.Revision == 0:
		return ErrUserEmpty
	case info.Revision < s.revision:
		// Checked against permissions older than these: the client
		// asks again, and the new ones decide.
		return ErrAuthOldRevision
	}
	p := s.perms[info.User]
	switch {
	case p == nil:
		return ErrPermissionDenied
	case p.root:
		return nil
	}
	set := p.read
	if write {
		set = p.write
	}
	ok := false
	if len(end) == 0 {
		ok = set.holds(key)
	} else {
		ok = set.covers(spanOf(key, end))
	}
	if !ok {
		return ErrPermissionDenied
	}
	return nil
}
