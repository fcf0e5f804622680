package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvd-io/kvd/pkg/client"
)

// Errors of v3 discovery, worded as etcd's.
var (
	ErrSizeNotFound = errors.New("discovery: size key not found")
	ErrBadSizeKey   = errors.New("discovery: size key is bad")
	ErrFullCluster  = errors.New("discovery: cluster is full")
	ErrInvalidURL   = errors.New("discovery: invalid peer URL")
)

// RegistryPrefix is where every discovery token keeps its keys.
const RegistryPrefix = "/_etcd/registry"

// Defaults of the timeouts, etcd's.
const (
	DefaultDialTimeout    = 2 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

// V3Config is what a member needs to join a new cluster through v3
// discovery.
type V3Config struct {
	// Endpoints are client URLs of the cluster that serves discovery.
	Endpoints []string
	// Token names the new cluster in the registry; one token bootstraps
	// one cluster only.
	Token string
	// DialTimeout bounds connecting to an endpoint; zero means etcd's
	// default.
	DialTimeout time.Duration
	// Username and Password log in to the discovery cluster when set.
	Username, Password string
	// Joiner is the member and how patiently it asks; its PollInterval
	// is the first pause between two reads of the registry while
	// members are missing.
	Joiner
}

// Joiner is what every discovery way needs of the member that joins: who
// it is, and how patiently it asks.
type Joiner struct {
	// Name and PeerURLs are this member's --name and
	// --initial-advertise-peer-urls; MemberID is the ID the member will
	// have, which names its registration.
	Name     string
	PeerURLs []string
	MemberID uint64
	// RequestTimeout bounds each request; zero means etcd's default.
	RequestTimeout time.Duration
	// PollInterval is the first pause before asking again; it doubles up
	// to MaxPollInterval. Zero means 100ms and 2s.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	Logger          *slog.Logger
}

// check refuses a member that cannot register and fills in defaults.
func (j *Joiner) check() error {
	switch {
	case j.Name == "":
		return errors.New("discovery: member name is empty")
	case len(j.PeerURLs) == 0:
		return errors.New("discovery: member has no peer URL")
	case j.MemberID == 0:
		return errors.New("discovery: member ID is zero")
	}
	if j.RequestTimeout <= 0 {
		j.RequestTimeout = DefaultRequestTimeout
	}
	if j.PollInterval <= 0 {
		j.PollInterval = 100 * time.Millisecond
	}
	if j.MaxPollInterval < j.PollInterval {
		j.MaxPollInterval = max(2*time.Second, j.PollInterval)
	}
	if j.Logger == nil {
		j.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// SizeKey is where the operator puts the expected number of members.
func SizeKey(token string) string { return RegistryPrefix + "/" + token + "/_config/size" }

// MembersPrefix is the prefix under which the members of token register.
func MembersPrefix(token string) string { return RegistryPrefix + "/" + token + "/members/" }

// MemberKey is the registration key of one member: its ID in hex.
func MemberKey(token string, id uint64) string {
	return MembersPrefix(token) + strconv.FormatUint(id, 16)
}

// RegistrationValue is what a member registers: its name paired with each
// of its peer URLs, in --initial-cluster form.
func RegistrationValue(name string, peerURLs []string) string {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	parts := make([]string, len(urls))
	for i, u := range urls {
		parts[i] = name + "=" + u
	}
	return strings.Join(parts, ",")
}

func (c *V3Config) check() error {
	switch {
	case len(c.Endpoints) == 0:
		return errors.New("discovery: no discovery endpoint given")
	case c.Token == "":
		return errors.New("discovery: the discovery token is empty")
	case strings.Contains(c.Token, "/"):
		return fmt.Errorf("discovery: the discovery token %q must not contain '/'", c.Token)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c.Joiner.check()
}

// JoinV3 registers this member under cfg.Token and waits until as many
// members as the size key asks for have registered. The first of them by
// creation revision form the cluster, returned in --initial-cluster form;
// every member that joins the same token gets the same string. A member
// that registered after the cluster was complete gets ErrFullCluster.
//
// The registry is polled rather than watched. Errors talking to the
// discovery cluster are retried until ctx ends; a missing or bad size key
// is not, since waiting would not fix it.
func JoinV3(ctx context.Context, cfg V3Config) (string, error) {
	if err := cfg.check(); err != nil {
		return "", err
	}
	c, err := client.New(client.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		Context:     ctx,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return "", fmt.Errorf("discovery: connect to %v: %w", cfg.Endpoints, err)
	}
	defer c.Close()
	j := &joiner{cfg: cfg, kv: c.KV, lg: cfg.Logger.With("discovery-token", cfg.Token, "member", cfg.Name)}
	return j.join(ctx)
}

type joiner struct {
	cfg V3Config
	kv  client.KV
	lg  *slog.Logger
}

// registry is one read of the registry: the expected size and the valid
// registrations in creation order.
type registry struct {
	size    int
	members []registration
}

type registration struct {
	key, value string
}

// position is where key stands among the registrations, or -1.
func (r registry) position(key string) int {
	return slices.IndexFunc(r.members, func(m registration) bool { return m.key == key })
}

// cluster is the --initial-cluster string of the first size members.
func (r registry) cluster() (string, error) {
	parts := make([]string, 0, r.size)
	for _, m := range r.members[:r.size] {
		parts = append(parts, m.value)
	}
	s := strings.Join(parts, ",")
	for _, pair := range strings.Split(s, ",") {
		name, raw, _ := strings.Cut(pair, "=")
		u, err := url.Parse(raw)
		if name == "" || err != nil || u.Scheme == "" || u.Host == "" {
			return "", fmt.Errorf("registered %q: %w", pair, ErrInvalidURL)
		}
	}
	return s, nil
}

func (j *joiner) join(ctx context.Context) (string, error) {
	key := MemberKey(j.cfg.Token, j.cfg.MemberID)
	value := RegistrationValue(j.cfg.Name, j.cfg.PeerURLs)
	reg, err := j.read(ctx)
	if err != nil {
		return "", err
	}
	if reg.position(key) < 0 && len(reg.members) >= reg.size {
		return "", fmt.Errorf("join token %q with %d members: %w", j.cfg.Token, reg.size, ErrFullCluster)
	}
	if err := j.register(ctx, key, value); err != nil {
		return "", err
	}
	delay := j.cfg.PollInterval
	for {
		if reg, err = j.read(ctx); err != nil {
			return "", err
		}
		pos := reg.position(key)
		switch {
		case pos >= reg.size:
			return "", fmt.Errorf("join token %q: registered as member %d of %d: %w", j.cfg.Token, pos+1, reg.size, ErrFullCluster)
		case pos < 0:
			// Someone deleted our registration: the token is being
			// misused, and waiting would not help.
			return "", fmt.Errorf("discovery: registration %s disappeared from the registry", key)
		case len(reg.members) >= reg.size:
			s, err := reg.cluster()
			if err != nil {
				return "", fmt.Errorf("discovery: token %q: %w", j.cfg.Token, err)
			}
			j.lg.Info("discovery found every member", "size", reg.size, "initial-cluster", s)
			return s, nil
		}
		j.lg.Info("waiting for more members to register", "size", reg.size, "registered", len(reg.members))
		if err := sleep(ctx, delay); err != nil {
			return "", fmt.Errorf("discovery: wait for %d members of token %q, %d registered: %w", reg.size, j.cfg.Token, len(reg.members), err)
		}
		delay = min(2*delay, j.cfg.MaxPollInterval)
	}
}

// register creates this member's key unless it exists, which it does when
// an earlier start of the member registered and then stopped before it
// had bootstrapped.
func (j *joiner) register(ctx context.Context, key, value string) error {
	var resp *client.TxnResponse
	err := j.retry(ctx, "register", func(rctx context.Context) error {
		var err error
		resp, err = j.kv.Txn(rctx).
			If(client.Compare(client.CreateRevision(key), "=", 0)).
			Then(client.OpPut(key, value)).
			Else(client.OpGet(key)).
			Commit()
		return err
	})
	if err != nil {
		return err
	}
	if resp.Succeeded {
		j.lg.Info("registered with the discovery service", "key", key, "value", value)
		return nil
	}
	var have string
	if rs := resp.Responses; len(rs) > 0 {
		if kvs := rs[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			have = string(kvs[0].Value)
		}
	}
	if have != value {
		return fmt.Errorf("discovery: %s is already registered as %q, not %q", key, have, value)
	}
	j.lg.Info("already registered with the discovery service", "key", key)
	return nil
}

// read fetches the size key and the registrations.
func (j *joiner) read(ctx context.Context) (registry, error) {
	var (
		reg  registry
		fail error // a problem retrying cannot fix
	)
	err := j.retry(ctx, "read the registry", func(rctx context.Context) error {
		sizeResp, err := j.kv.Get(rctx, SizeKey(j.cfg.Token))
		if err != nil {
			return err
		}
		if len(sizeResp.Kvs) == 0 {
			fail = fmt.Errorf("token %q (%s): %w", j.cfg.Token, SizeKey(j.cfg.Token), ErrSizeNotFound)
			return nil
		}
		size, perr := strconv.Atoi(strings.TrimSpace(string(sizeResp.Kvs[0].Value)))
		if perr != nil || size <= 0 {
			fail = fmt.Errorf("token %q: size %q: %w", j.cfg.Token, sizeResp.Kvs[0].Value, ErrBadSizeKey)
			return nil
		}
		resp, err := j.kv.Get(rctx, MembersPrefix(j.cfg.Token), client.WithPrefix(),
			client.WithSort(client.SortByCreateRevision, client.SortAscend))
		if err != nil {
			return err
		}
		reg = registry{size: size}
		for _, kv := range resp.Kvs {
			v := strings.TrimSpace(string(kv.Value))
			if !strings.Contains(v, "=") {
				j.lg.Warn("ignoring a malformed registration", "key", string(kv.Key), "value", v)
				continue
			}
			reg.members = append(reg.members, registration{key: string(kv.Key), value: v})
		}
		return nil
	})
	if err == nil {
		err = fail
	}
	return reg, err
}

// retry runs call with a fresh request timeout until it succeeds or ctx
// ends, pausing longer after each failure, as etcd keeps retrying the
// discovery service.
func (j *joiner) retry(ctx context.Context, what string, call func(context.Context) error) error {
	delay := j.cfg.PollInterval
	for {
		rctx, cancel := context.WithTimeout(ctx, j.cfg.RequestTimeout)
		err := call(rctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("discovery: %s at %v: %w", what, j.cfg.Endpoints, err)
		}
		j.lg.Warn("discovery service request failed; retrying", "step", what, "err", err, "backoff", delay)
		if serr := sleep(ctx, delay); serr != nil {
			return fmt.Errorf("discovery: %s at %v: %w (last error: %v)", what, j.cfg.Endpoints, serr, err)
		}
		delay = min(2*delay, j.cfg.MaxPollInterval)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
