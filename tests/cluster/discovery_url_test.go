package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/tests/framework"
)

// newDiscoveryURL asks the discovery service of m for a token of size.
func newDiscoveryURL(t *testing.T, m *framework.Member, size int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/new?size=%d", m.ClientURL(), size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), m.ClientURL()+"/discovery/") {
		t.Fatalf("GET /new?size=%d: %d %q", size, resp.StatusCode, body)
	}
	return string(body)
}

// registered lists the members registered with a discovery URL, as
// "id=value", in key order.
func registered(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Node struct {
			Nodes []struct {
				Key   string `json:"key"`
				Dir   bool   `json:"dir"`
				Value string `json:"value"`
			} `json:"nodes"`
		} `json:"node"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	var out []string
	for _, n := range got.Node.Nodes {
		if !n.Dir {
			out = append(out, path.Base(n.Key)+"="+n.Value)
		}
	}
	return out
}

// checkDiscoveredCluster requires that ms form one cluster of exactly
// them, with the IDs etcd would give them for url, and that a write
// through one is read through each of the others.
func checkDiscoveredCluster(ctx context.Context, t *testing.T, ms []*framework.Member, url string) {
	t.Helper()
	var wantNames, wantURLs []string
	var wantIDs []uint64
	for _, m := range ms {
		wantNames = append(wantNames, m.Name)
		wantURLs = append(wantURLs, m.PeerURL)
		wantIDs = append(wantIDs, membership.MemberID([]string{m.PeerURL}, url, nil))
	}
	slices.Sort(wantNames)
	slices.Sort(wantURLs)
	slices.Sort(wantIDs)
	for _, m := range ms {
		if !m.Healthy() {
			t.Fatalf("%s is not healthy; log:\n%s", m.Name, m.Log())
		}
		names, urls, ids := memberPeerURLs(ctx, t, m)
		if !slices.Equal(names, wantNames) || !slices.Equal(urls, wantURLs) || !slices.Equal(ids, wantIDs) {
			t.Fatalf("members through %s: %v %v %x; want %v %v %x", m.Name, names, urls, ids, wantNames, wantURLs, wantIDs)
		}
	}
	if _, err := kvdClient(t, ms[0].Endpoint).Put(ctx, "discovered", url); err != nil {
		t.Fatalf("write through %s: %v", ms[0].Name, err)
	}
	for _, m := range ms[1:] {
		resp, err := kvdClient(t, m.Endpoint).Get(ctx, "discovered")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != url {
			t.Fatalf("read through %s: %v %v", m.Name, resp, err)
		}
	}
}

// TestDiscoveryURLBootstrap: a kvd started with --enable-discovery-service
// hands out a URL; three new members started at once with only
// --discovery and that URL form one cluster; a fourth is refused with
// "cluster is full", exits, and registers nothing; a restarted member
// ignores the URL, whose service is gone by then.
func TestDiscoveryURLBootstrap(t *testing.T) {
	disc := framework.StartKvd(t, "--enable-discovery-service")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := newDiscoveryURL(t, disc, 3)
	ms := framework.StartKvdDiscovery(t, 3, nil, "--discovery", url)
	checkDiscoveredCluster(ctx, t, ms, url)
	before := registered(t, url)
	if len(before) != 3 {
		t.Fatalf("registrations: %v", before)
	}

	extra := framework.NewKvdDiscoveryMembers(t, 4, "--discovery", url)[3]
	extra.Launch()
	t.Cleanup(extra.Stop)
	code, exited := extra.WaitExit(30 * time.Second)
	if !exited || code == 0 || !strings.Contains(extra.Log(), "discovery: cluster is full") {
		t.Fatalf("fourth member: exited %v with %d; log:\n%s", exited, code, extra.Log())
	}
	if after := registered(t, url); !slices.Equal(after, before) {
		t.Fatalf("the fourth member changed the registrations: %v, was %v", after, before)
	}
	if names, _, _ := memberPeerURLs(ctx, t, ms[1]); len(names) != 3 {
		t.Fatalf("members after the fourth: %v", names)
	}

	disc.Stop()
	ms[0].Stop()
	ms[0].Start()
	resp, err := kvdClient(t, ms[0].Endpoint).Get(ctx, "discovered")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read after a restart without the discovery service: %v %v", resp, err)
	}
}

// TestDiscoveryURLLeaderLoss: the token is made on the serving cluster's
// leader, which is killed while two members wait for the third. The
// members reach the service through a proxy that then turns to another
// serving member: the token lives in the cluster's replicated key space,
// so that member answers the same, every surviving member does, and the
// bootstrap completes.
func TestDiscoveryURLLeaderLoss(t *testing.T) {
	serving := framework.StartKvdCluster(t, 3, "--enable-discovery-service")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	leader := leaderOf(ctx, t, serving)
	proxy := framework.StartHTTPProxy(t, serving[leader].Endpoint)
	url := newDiscoveryURL(t, serving[leader], 3)

	ms := framework.NewKvdDiscoveryMembers(t, 3, "--discovery", url, "--discovery-proxy", proxy.Addr())
	for _, m := range ms[:2] {
		m.Launch()
		t.Cleanup(m.Stop)
	}
	eventually(t, 30*time.Second, "two registrations", func() error {
		if got := registered(t, url); len(got) != 2 {
			return fmt.Errorf("registered: %v", got)
		}
		return nil
	})
	serving[leader].Kill()
	survivors := slices.Delete(slices.Clone(serving), leader, leader+1)
	proxy.SetTarget(survivors[0].Endpoint)
	ms[2].Launch()
	t.Cleanup(ms[2].Stop)
	for _, m := range ms {
		m.WaitHealthy(60 * time.Second)
	}
	checkDiscoveredCluster(ctx, t, ms, url)
	token := strings.TrimPrefix(url, serving[leader].ClientURL())
	first := registered(t, survivors[0].ClientURL()+token)
	if second := registered(t, survivors[1].ClientURL()+token); len(first) != 3 || !slices.Equal(first, second) {
		t.Fatalf("the surviving members answer %v and %v", first, second)
	}
}

// TestDiscoveryURLEtcd35: members of a real etcd v3.5, the last release
// with --discovery, bootstrap from kvd's discovery service; a fourth
// finds the cluster full and exits.
func TestDiscoveryURLEtcd35(t *testing.T) {
	bin := framework.Etcd35Bin()
	if bin == "" {
		t.Skip("KVD_ETCD35_BIN is not set; make tools builds etcd v3.5")
	}
	bin = framework.RequireBin(t, bin)
	disc := framework.StartKvd(t, "--enable-discovery-service")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := newDiscoveryURL(t, disc, 3)
	ms := framework.NewKvdDiscoveryMembers(t, 4, "--discovery", url, "--discovery-fallback", "exit")
	for _, m := range ms[:3] {
		m.Bin = bin
		m.Launch()
		t.Cleanup(m.Stop)
	}
	for _, m := range ms[:3] {
		m.WaitHealthy(60 * time.Second)
	}
	checkDiscoveredCluster(ctx, t, ms[:3], url)

	ms[3].Bin = bin
	ms[3].Launch()
	t.Cleanup(ms[3].Stop)
	code, exited := ms[3].WaitExit(30 * time.Second)
	if !exited || code == 0 || !strings.Contains(ms[3].Log(), "discovery: cluster is full") {
		t.Fatalf("fourth etcd member: exited %v with %d; log:\n%s", exited, code, ms[3].Log())
	}
	if got := registered(t, url); len(got) != 3 {
		t.Fatalf("registrations after the fourth: %v", got)
	}
}

// TestDiscoveryURLRegisterAgain: a member killed while it waits for the
// others, and started again with the same URL, finds its own
// registration and goes on waiting instead of failing or registering
// twice; the cluster then forms as usual.
func TestDiscoveryURLRegisterAgain(t *testing.T) {
	disc := framework.StartKvd(t, "--enable-discovery-service")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := newDiscoveryURL(t, disc, 2)
	ms := framework.NewKvdDiscoveryMembers(t, 2, "--discovery", url)
	ms[0].Launch()
	t.Cleanup(ms[0].Stop)
	eventually(t, 30*time.Second, "the first registration", func() error {
		if got := registered(t, url); len(got) != 1 {
			return fmt.Errorf("registered: %v", got)
		}
		return nil
	})
	ms[0].Kill()
	ms[0].WaitExit(10 * time.Second)
	ms[0].Launch()
	ms[1].Launch()
	t.Cleanup(ms[1].Stop)
	for _, m := range ms {
		m.WaitHealthy(60 * time.Second)
	}
	checkDiscoveredCluster(ctx, t, ms, url)
	if got := registered(t, url); len(got) != 2 {
		t.Fatalf("registrations: %v", got)
	}
}
