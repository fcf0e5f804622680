package auth

import (
	"context"
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
	user, ok := s.tokens.user(token)
	if !ok {
		return Info{}, ErrInvalidAuthToken
	}
	return Info{User: user, Revision: rev}, nil
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
	if !set.covers(spanOf(key, end)) {
		return ErrPermissionDenied
	}
	return nil
}
