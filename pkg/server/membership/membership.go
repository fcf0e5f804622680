// Package membership keeps the set of members that form a kvd cluster: their
// names, peer and client URLs, learner status, and the IDs that identify each
// member and the cluster as a whole.
//
// IDs are derived from names, URLs and the cluster token the same way etcd
// derives them, so a member restarted with the same flags is the same member
// and etcd tooling that prints IDs sees familiar values.
package membership

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Member is one member of the cluster as it is replicated through raft.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// NewMember returns a member whose ID is derived from its peer URLs and the
// cluster token. A member added at runtime passes the time of the request,
// so that re-adding the same URLs later yields a fresh ID.
func NewMember(name string, peerURLs []string, token string, now *time.Time) *Member {
	return &Member{
		ID:       MemberID(peerURLs, token, now),
		Name:     name,
		PeerURLs: slices.Clone(peerURLs),
	}
}

// MemberID hashes the sorted peer URLs, the cluster token and, when given,
// the time in seconds, and takes the first eight bytes of the SHA-1 sum.
func MemberID(peerURLs []string, token string, now *time.Time) uint64 {
	sorted := slices.Clone(peerURLs)
	slices.Sort(sorted)
	b := []byte(strings.Join(sorted, "") + token)
	if now != nil {
		b = strconv.AppendInt(b, now.Unix(), 10)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// ClusterID hashes the member IDs in ascending order.
func ClusterID(memberIDs []uint64) uint64 {
	ids := slices.Clone(memberIDs)
	slices.Sort(ids)
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// Marshal encodes m for a raft conf change context or for storage.
func (m *Member) Marshal() ([]byte, error) { return json.Marshal(m) }

// UnmarshalMember decodes what Marshal produced.
func UnmarshalMember(b []byte) (*Member, error) {
	m := new(Member)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("decode member: %w", err)
	}
	return m, nil
}

// ParseInitialCluster parses --initial-cluster ("name=url,name=url,...") into
// members whose IDs are derived from token. A name may appear more than once
// to give a member several peer URLs.
func ParseInitialCluster(s, token string) ([]*Member, error) {
	urlsByName := map[string][]string{}
	var order []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok || name == "" || raw == "" {
			return nil, fmt.Errorf("initial cluster %q: entry %q is not name=url", s, part)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("initial cluster %q: %q is not a URL with scheme and host", s, raw)
		}
		if _, seen := urlsByName[name]; !seen {
			order = append(order, name)
		}
		urlsByName[name] = append(urlsByName[name], u.String())
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("initial cluster %q names no member", s)
	}
	members := make([]*Member, 0, len(order))
	seenID := map[uint64]string{}
	for _, name := range order {
		m := NewMember(name, urlsByName[name], token, nil)
		if other, dup := seenID[m.ID]; dup {
			return nil, fmt.Errorf("initial cluster %q: members %q and %q share peer URLs", s, other, name)
		}
		seenID[m.ID] = name
		members = append(members, m)
	}
	return members, nil
}

// Cluster is the live member set of the local member's cluster. It is safe
// for concurrent use: the applier changes it while API handlers read it.
type Cluster struct {
	mu      sync.RWMutex
	id      uint64
	localID uint64
	members map[uint64]*Member
	// localLearner mirrors whether the local member is a learner, and
	// soleVoter whether it is the cluster's only voter, both read on
	// every request without taking mu.
	localLearner atomic.Bool
	soleVoter    atomic.Bool
}

// NewCluster returns a cluster with the given identity and members.
func NewCluster(id, localID uint64, members []*Member) *Cluster {
	c := &Cluster{id: id, localID: localID}
	c.Replace(members)
	return c
}

// LocalIsLearner says whether the local member is a learner.
func (c *Cluster) LocalIsLearner() bool { return c.localLearner.Load() }

// LocalIsSoleVoter says whether the local member is the cluster's only
// voting member.
func (c *Cluster) LocalIsSoleVoter() bool { return c.soleVoter.Load() }

// changed refreshes what is derived from the member set; mu is held.
func (c *Cluster) changed() {
	m, ok := c.members[c.localID]
	c.localLearner.Store(ok && m.IsLearner)
	voters := 0
	for _, m := range c.members {
		if !m.IsLearner {
			voters++
		}
	}
	c.soleVoter.Store(ok && !m.IsLearner && voters == 1)
}

// ID is the cluster ID.
func (c *Cluster) ID() uint64 { return c.id }

// LocalID is the ID of the member this process runs.
func (c *Cluster) LocalID() uint64 { return c.localID }

// Members returns a copy of the members, ordered by ID.
func (c *Cluster) Members() []*Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.clone())
	}
	slices.SortFunc(out, func(a, b *Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Member returns a copy of the member with id, or nil.
func (c *Cluster) Member(id uint64) *Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.members[id]
	if !ok {
		return nil
	}
	return m.clone()
}

func (m *Member) clone() *Member {
	cp := *m
	cp.PeerURLs = slices.Clone(m.PeerURLs)
	cp.ClientURLs = slices.Clone(m.ClientURLs)
	return &cp
}

// Add inserts or replaces m.
func (c *Cluster) Add(m *Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[m.ID] = m
	c.changed()
}

// Remove drops the member with id.
func (c *Cluster) Remove(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.members, id)
	c.changed()
}

// Replace swaps the whole member set, as when a snapshot is installed.
func (c *Cluster) Replace(members []*Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = make(map[uint64]*Member, len(members))
	for _, m := range members {
		c.members[m.ID] = m
	}
	c.changed()
}

// PeerURLOwner returns the ID of a member other than except that already
// uses one of urls, or 0.
func (c *Cluster) PeerURLOwner(urls []string, except uint64) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for id, m := range c.members {
		if id == except {
			continue
		}
		for _, u := range m.PeerURLs {
			if slices.Contains(urls, u) {
				return id
			}
		}
	}
	return 0
}
