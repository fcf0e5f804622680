package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors of bootstrapping from a discovery URL.
var (
	// ErrTokenNotFound: the service does not know the URL's token; it was
	// never handed out, or it has expired.
	ErrTokenNotFound = errors.New("discovery: token not found (never created, or expired)")
	// ErrBadDiscoveryEndpoint: the URL does not answer as a discovery
	// service does.
	ErrBadDiscoveryEndpoint = errors.New("discovery: bad discovery endpoint")
)

// urlWaitBound is the longest one wait for registrations is held from
// the member's side, so that a service that went silent is asked again.
const urlWaitBound = 30 * time.Second

// URLConfig is what a member needs to bootstrap a new cluster from a
// discovery URL.
type URLConfig struct {
	// URL names the token, as /new handed it out.
	URL string
	// Proxy, when set, is an HTTP proxy the service is reached through.
	Proxy string
	// Joiner is the member and how patiently it asks; its
	// RequestTimeout bounds each request but the waits, and its
	// PollInterval is the first pause after a failed request.
	Joiner
}

// ParseURL checks a discovery URL: http or https, a host, and a token in
// its path.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("discovery URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("discovery URL %q: want http(s)://host/token", raw)
	}
	if strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("discovery URL %q names no token", raw)
	}
	u.Path = "/" + strings.Trim(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// proxyFunc reads --discovery-proxy; a bare host:port means http.
func proxyFunc(raw string) (func(*http.Request) (*url.URL, error), error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(u.Scheme, "http") || u.Host == "" {
		u, err = url.Parse("http://" + raw)
	}
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("discovery proxy %q is not a URL", raw)
	}
	return http.ProxyURL(u), nil
}

// JoinURL registers this member with the discovery URL's token and
// waits until as many members as the token's size have registered; the
// first of them, by registration, form the cluster, returned in
// --initial-cluster form. A member that finds the cluster complete
// without it gets ErrFullCluster and registers nothing. Registering
// again under the same ID with the same value (a restart before the
// cluster formed) is harmless. Failures to reach the service are
// retried until ctx ends; answers that waiting would not change (an
// unknown or expired token, a bad size) are not.
func JoinURL(ctx context.Context, cfg URLConfig) (string, error) {
	if err := cfg.Joiner.check(); err != nil {
		return "", err
	}
	base, err := ParseURL(cfg.URL)
	if err != nil {
		return "", err
	}
	proxy, err := proxyFunc(cfg.Proxy)
	if err != nil {
		return "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = proxy
	defer tr.CloseIdleConnections()
	j := &urlJoiner{
		cfg:  cfg,
		base: base,
		hc:   &http.Client{Transport: tr},
		self: strconv.FormatUint(cfg.MemberID, 16),
		lg:   cfg.Logger.With("discovery-url", cfg.URL, "member", cfg.Name),
	}
	return j.join(ctx)
}

type urlJoiner struct {
	cfg  URLConfig
	base *url.URL
	hc   *http.Client
	self string // the registration's key: the member ID in hex
	lg   *slog.Logger
}

// permanent marks an error that retrying will not fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (j *urlJoiner) join(ctx context.Context) (string, error) {
	value := RegistrationValue(j.cfg.Name, j.cfg.PeerURLs)
	st, err := j.state(ctx)
	if err != nil {
		return "", err
	}
	if st.position(j.self) < 0 && len(st.members) >= st.size {
		return "", fmt.Errorf("the token's %d members have registered already: %w", st.size, ErrFullCluster)
	}
	if err := j.retry(ctx, "register", func(rctx context.Context) error { return j.register(rctx, value) }); err != nil {
		return "", err
	}
	for {
		if st, err = j.state(ctx); err != nil {
			return "", err
		}
		pos := st.position(j.self)
		switch {
		case pos >= st.size:
			return "", fmt.Errorf("registered as member %d of %d: %w", pos+1, st.size, ErrFullCluster)
		case pos < 0:
			return "", fmt.Errorf("discovery: the registration of %s disappeared from %s", j.self, j.cfg.URL)
		case len(st.members) >= st.size:
			s, err := st.cluster()
			if err != nil {
				return "", fmt.Errorf("discovery: %s: %w", j.cfg.URL, err)
			}
			j.lg.Info("discovery found every member", "size", st.size, "initial-cluster", s)
			return s, nil
		}
		j.lg.Info("waiting for more members to register", "size", st.size, "registered", len(st.members))
		if err := j.waitChange(ctx, st.index); err != nil {
			return "", fmt.Errorf("discovery: wait for %d members at %s, %d registered: %w", st.size, j.cfg.URL, len(st.members), err)
		}
	}
}

// urlState is one read of the token: its size and registrations, in
// the order they registered, and the index it was read at.
type urlState struct {
	registry
	index int64
}

// state reads the token, retrying failures to reach the service.
func (j *urlJoiner) state(ctx context.Context) (urlState, error) {
	var st urlState
	err := j.retry(ctx, "read the token", func(rctx context.Context) error {
		var err error
		st, err = j.readState(rctx)
		return err
	})
	return st, err
}

func (j *urlJoiner) readState(ctx context.Context) (urlState, error) {
	var st urlState
	sizeNode, _, err := j.get(ctx, "_config/size")
	if err != nil {
		return st, err
	}
	if st.size, err = strconv.Atoi(deref(sizeNode.Value)); err != nil || st.size <= 0 {
		return st, permanent{fmt.Errorf("%s: size %q: %w", j.cfg.URL, deref(sizeNode.Value), ErrBadSizeKey)}
	}
	dir, index, err := j.get(ctx, "")
	if err != nil {
		return st, err
	}
	st.index = index
	nodes := slices.Clone(dir.Nodes)
	slices.SortStableFunc(nodes, func(a, b *V2Node) int { return cmp.Compare(a.CreatedIndex, b.CreatedIndex) })
	for _, n := range nodes {
		if n.Dir || path.Base(n.Key) == "_config" {
			continue
		}
		st.members = append(st.members, registration{key: path.Base(n.Key), value: strings.TrimSpace(deref(n.Value))})
	}
	return st, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// register creates this member's key unless an earlier start of the
// member did; a key of the same ID with another value is an error.
func (j *urlJoiner) register(ctx context.Context, value string) error {
	form := url.Values{"value": {value}}
	status, _, body, err := j.do(ctx, http.MethodPut, j.self, url.Values{"prevExist": {"false"}}, form)
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusCreated || status == http.StatusOK:
		j.lg.Info("registered with the discovery service", "key", j.self, "value", value)
		return nil
	case status/100 == 5:
		return fmt.Errorf("register: %s", v2ErrorText(status, body))
	}
	switch e := parseV2Error(body); {
	case e != nil && e.Code == codeKeyNotFound:
		return permanent{fmt.Errorf("%s: %w", j.cfg.URL, ErrTokenNotFound)}
	case e == nil || e.Code != codeNodeExist:
		return answerError("register", status, body)
	}
	have, _, err := j.get(ctx, j.self)
	if err != nil {
		return err
	}
	if deref(have.Value) != value {
		return permanent{fmt.Errorf("discovery: %s is already registered at %s as %q, not %q", j.self, j.cfg.URL, deref(have.Value), value)}
	}
	j.lg.Info("already registered with the discovery service", "key", j.self)
	return nil
}

// waitChange long-polls for the next change to the token after index.
// Whatever ends the poll, the caller reads the token again; a failure is
// followed by a pause, so an unreachable service is not hammered.
func (j *urlJoiner) waitChange(ctx context.Context, index int64) error {
	wctx, cancel := context.WithTimeout(ctx, urlWaitBound)
	defer cancel()
	q := url.Values{"wait": {"true"}, "recursive": {"true"}, "waitIndex": {strconv.FormatInt(index+1, 10)}}
	status, _, body, err := j.do(wctx, http.MethodGet, "", q, nil)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil && status == http.StatusOK {
		return nil
	}
	if err == nil {
		err = errors.New(v2ErrorText(status, body))
	}
	if wctx.Err() != nil {
		return nil // the poll ran its course
	}
	j.lg.Warn("waiting on the discovery service failed; reading the token again", "err", err, "backoff", j.cfg.PollInterval)
	return sleep(ctx, j.cfg.PollInterval)
}

// get reads the node at rel below the token ("" for the token itself).
func (j *urlJoiner) get(ctx context.Context, rel string) (*V2Node, int64, error) {
	status, index, body, err := j.do(ctx, http.MethodGet, rel, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	if status == http.StatusOK {
		var resp V2Response
		if err := json.Unmarshal(body, &resp); err != nil || resp.Node == nil {
			return nil, 0, permanent{fmt.Errorf("%s: %w", j.cfg.URL, ErrBadDiscoveryEndpoint)}
		}
		return resp.Node, index, nil
	}
	if status/100 == 5 {
		return nil, 0, errors.New(v2ErrorText(status, body))
	}
	if e := parseV2Error(body); e != nil && e.Code == codeKeyNotFound {
		return nil, 0, permanent{fmt.Errorf("%s: %w", j.cfg.URL, ErrTokenNotFound)}
	}
	return nil, 0, answerError("read "+rel, status, body)
}

// do sends one request to the token's path plus rel.
func (j *urlJoiner) do(ctx context.Context, method, rel string, query, form url.Values) (status int, index int64, body []byte, err error) {
	u := *j.base
	if rel != "" {
		u.Path += "/" + rel
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, 0, nil, permanent{err}
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := j.hc.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, 0, nil, err
	}
	index, _ = strconv.ParseInt(resp.Header.Get(indexHeader), 10, 64)
	return resp.StatusCode, index, body, nil
}

func parseV2Error(body []byte) *V2Error {
	var e V2Error
	if json.Unmarshal(body, &e) != nil || e.Code == 0 {
		return nil
	}
	return &e
}

func v2ErrorText(status int, body []byte) string {
	if e := parseV2Error(body); e != nil {
		return e.Error()
	}
	return fmt.Sprintf("%s: %s", http.StatusText(status), strings.TrimSpace(string(body)))
}

// answerError is a 4xx answer other than the expected ones: the URL does
// not speak the protocol, and asking again would not change that.
func answerError(what string, status int, body []byte) error {
	return permanent{fmt.Errorf("discovery: %s: %s: %w", what, v2ErrorText(status, body), ErrBadDiscoveryEndpoint)}
}

// retry runs call with a fresh request timeout until it succeeds, fails
// for good, or ctx ends, pausing longer after each failure.
func (j *urlJoiner) retry(ctx context.Context, what string, call func(context.Context) error) error {
	delay := j.cfg.PollInterval
	for {
		rctx, cancel := context.WithTimeout(ctx, j.cfg.RequestTimeout)
		err := call(rctx)
		cancel()
		var p permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.error
		case ctx.Err() != nil:
			return fmt.Errorf("discovery: %s at %s: %w", what, j.cfg.URL, err)
		}
		j.lg.Warn("discovery service request failed; retrying", "step", what, "err", err, "backoff", delay)
		if serr := sleep(ctx, delay); serr != nil {
			return fmt.Errorf("discovery: %s at %s: %w (last error: %v)", what, j.cfg.URL, serr, err)
		}
		delay = min(2*delay, j.cfg.MaxPollInterval)
	}
}
