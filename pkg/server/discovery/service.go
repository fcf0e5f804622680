package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The discovery-URL service: `GET /new?size=N` hands out a token and the
// URL that names it, and the URL's own path speaks the part of etcd v2's
// keys API a member needs to bootstrap from it (read the size, register,
// list and wait for the others). The tokens live in the serving
// cluster's key space under StorePrefix, each token's keys on one lease,
// so every member answers alike, the state survives restarts and leader
// changes, and a token ends when its lease does.

// StorePrefix is the reserved prefix of the serving cluster's key space
// under which the service keeps its tokens.
const StorePrefix = "/_kvd/discovery/"

// Paths the service answers on a member's client URLs.
const (
	NewPath   = "/new"
	TokenPath = "/discovery/"
)

// DefaultTokenTTL is how long a token lives unless configured otherwise.
const DefaultTokenTTL = 24 * time.Hour

// defaultSize is the size of a token asked for without one, as the
// public service had it.
const defaultSize = 3

// sizeKey names, under a token, the key that holds its size.
const sizeKey = "_config/size"

// ErrCompacted is what Store.NextEvent returns when the revision to start
// from is no longer in the store's history.
var ErrCompacted = errors.New("discovery: the revision waited from has been compacted")

// Store is what the service needs of the member it runs in. Reads are
// linearizable; writes go through raft.
type Store interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	// NextEvent waits for the first change to [key, end) (key alone when
	// end is nil) at revision rev or later.
	NextEvent(ctx context.Context, key, end []byte, rev int64) (*mvccpb.Event, error)
}

// ServiceConfig configures the discovery service of one member.
type ServiceConfig struct {
	Store Store
	// TokenTTL is how long a token and its registrations live.
	TokenTTL time.Duration
	// RequestTimeout bounds each read or write of the store.
	RequestTimeout time.Duration
	// LongPoll is the longest a wait is held before it is answered with
	// an empty body, on which a member asks again.
	LongPoll time.Duration
	// Context ends every wait in progress when the member stops.
	Context context.Context
	Logger  *slog.Logger
}

// Service serves discovery URLs.
type Service struct {
	cfg ServiceConfig
}

// NewService returns the service; zero fields of cfg get defaults.
func NewService(cfg ServiceConfig) *Service {
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.LongPoll <= 0 {
		cfg.LongPoll = 5 * time.Minute
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// Mount adds the service's handlers to mux.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+NewPath, s.newToken)
	mux.HandleFunc(TokenPath, s.serveToken)
}

// ParseSize reads the size a token is asked for: a positive whole number.
func ParseSize(raw string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size must be a positive whole number, not %q", raw)
	}
	return n, nil
}

// NewToken returns a random 128-bit token in hex.
func NewToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("discovery: random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func (s *Service) newToken(w http.ResponseWriter, r *http.Request) {
	size := defaultSize
	if raw, given := r.URL.Query()["size"]; given {
		n, err := ParseSize(raw[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		size = n
	}
	token, err := s.create(r.Context(), size)
	if err != nil {
		s.cfg.Logger.Warn("discovery: create a token", "size", size, "err", err)
		http.Error(w, "could not create a discovery token: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	s.cfg.Logger.Info("discovery: token created", "token", token, "size", size, "ttl", s.cfg.TokenTTL)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s://%s%s%s", scheme, r.Host, TokenPath, token)
}

// create stores a new token of size on a lease of its own.
func (s *Service) create(ctx context.Context, size int) (string, error) {
	token, err := NewToken()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	ttl := int64((s.cfg.TokenTTL + time.Second - 1) / time.Second)
	lease, err := s.cfg.Store.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: ttl})
	if err != nil {
		return "", fmt.Errorf("grant the token's lease: %w", err)
	}
	key := []byte(storeKey(token, sizeKey))
	resp, err := s.cfg.Store.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: key, Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_CreateRevision{}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: key, Value: []byte(strconv.Itoa(size)), Lease: lease.ID,
		}}}},
	})
	if err != nil {
		return "", fmt.Errorf("store the token: %w", err)
	}
	if !resp.Succeeded {
		return "", errors.New("the random token is taken")
	}
	return token, nil
}

// tokenPath is a request's place in a token's key tree.
type tokenPath struct {
	token string
	rest  string // "" for the token itself, else e.g. "_config/size"
}

func parseTokenPath(p string) (tokenPath, bool) {
	p = strings.Trim(strings.TrimPrefix(p, TokenPath), "/")
	token, rest, _ := strings.Cut(p, "/")
	if token == "" || token == "." || token == ".." {
		return tokenPath{}, false
	}
	if rest != "" {
		rest = strings.TrimPrefix(path.Clean("/"+rest), "/")
	}
	return tokenPath{token: token, rest: rest}, true
}

// v2Key is the key a member sees: the URL path.
func (t tokenPath) v2Key() string {
	if t.rest == "" {
		return TokenPath + t.token
	}
	return TokenPath + t.token + "/" + t.rest
}

func (t tokenPath) storeKey() string { return storeKey(t.token, t.rest) }

// dirPrefix is the prefix of the keys below t, were it a directory.
func (t tokenPath) dirPrefix() string {
	if t.rest == "" {
		return storeKey(t.token, "")
	}
	return storeKey(t.token, t.rest) + "/"
}

// storeKey is where key rest of token lives in the key space; the
// token's own prefix has rest "".
func storeKey(token, rest string) string { return StorePrefix + token + "/" + rest }

// prefixEnd is the end of the range of keys starting with prefix.
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	t, ok := parseTokenPath(r.URL.Path)
	if !ok {
		writeV2Error(w, newV2Error(codeKeyNotFound, r.URL.Path, 0))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if r.URL.Query().Get("wait") == "true" {
			s.wait(w, r, t)
			return
		}
		s.get(w, r, t)
	case http.MethodPut:
		s.put(w, r, t)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// readToken reads every key of t's token, with the revision read at.
func (s *Service) readToken(ctx context.Context, t tokenPath) ([]*mvccpb.KeyValue, int64, *V2Error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	prefix := storeKey(t.token, "")
	resp, err := s.cfg.Store.Range(ctx, &pb.RangeRequest{Key: []byte(prefix), RangeEnd: prefixEnd(prefix)})
	if err != nil {
		return nil, 0, s.internal("read token", t, err)
	}
	return resp.Kvs, resp.GetHeader().GetRevision(), nil
}

func (s *Service) internal(what string, t tokenPath, err error) *V2Error {
	s.cfg.Logger.Warn("discovery: "+what, "token", t.token, "err", err)
	return newV2Error(codeRaftInternal, err.Error(), 0)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request, t tokenPath) {
	kvs, rev, verr := s.readToken(r.Context(), t)
	if verr != nil {
		writeV2Error(w, verr)
		return
	}
	node := buildNode(t, kvs, r.URL.Query().Get("recursive") == "true")
	if node == nil {
		writeV2Error(w, newV2Error(codeKeyNotFound, t.v2Key(), rev))
		return
	}
	writeV2(w, http.StatusOK, rev, &V2Response{Action: "get", Node: node})
}

// buildNode is the node at t among the token's keys kvs: the key itself,
// or a directory of those below it (all levels when recursive, else one);
// nil when there is neither.
func buildNode(t tokenPath, kvs []*mvccpb.KeyValue, recursive bool) *V2Node {
	if len(kvs) == 0 {
		return nil // the token is unknown or has expired
	}
	self := t.storeKey()
	for _, kv := range kvs {
		if string(kv.Key) == self && t.rest != "" {
			return &V2Node{Key: t.v2Key(), Value: strPtr(string(kv.Value)), ModifiedIndex: kv.ModRevision, CreatedIndex: kv.CreateRevision}
		}
	}
	dirPrefix := t.dirPrefix()
	var below []*mvccpb.KeyValue
	for _, kv := range kvs {
		if strings.HasPrefix(string(kv.Key), dirPrefix) {
			below = append(below, kv)
		}
	}
	if len(below) == 0 {
		return nil
	}
	return dirNode(t.v2Key(), dirPrefix, below, recursive, true)
}

// dirNode builds the directory whose keys (all starting with prefix) are
// kvs. A directory's indexes are those of its oldest and newest keys.
func dirNode(v2Key, prefix string, kvs []*mvccpb.KeyValue, recursive, listChildren bool) *V2Node {
	n := &V2Node{Key: v2Key, Dir: true}
	for _, kv := range kvs {
		if n.CreatedIndex == 0 || kv.CreateRevision < n.CreatedIndex {
			n.CreatedIndex = kv.CreateRevision
		}
		n.ModifiedIndex = max(n.ModifiedIndex, kv.ModRevision)
	}
	if !listChildren {
		return n
	}
	// Keys come sorted, so the keys of one child directory are adjacent.
	for i := 0; i < len(kvs); {
		rel := strings.TrimPrefix(string(kvs[i].Key), prefix)
		name, _, deeper := strings.Cut(rel, "/")
		if !deeper {
			n.Nodes = append(n.Nodes, &V2Node{Key: v2Key + "/" + name, Value: strPtr(string(kvs[i].Value)),
				ModifiedIndex: kvs[i].ModRevision, CreatedIndex: kvs[i].CreateRevision})
			i++
			continue
		}
		j := i
		childPrefix := prefix + name + "/"
		for j < len(kvs) && strings.HasPrefix(string(kvs[j].Key), childPrefix) {
			j++
		}
		n.Nodes = append(n.Nodes, dirNode(v2Key+"/"+name, childPrefix, kvs[i:j], recursive, recursive))
		i = j
	}
	return n
}
