package cluster

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kvdclient "github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/pkg/server/discovery"
	"github.com/kvd-io/kvd/pkg/server/membership"
	"github.com/kvd-io/kvd/tests/framework"
)

func kvdClient(t *testing.T, eps ...string) *kvdclient.Client {
	t.Helper()
	c, err := kvdclient.New(kvdclient.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// memberPeerURLs lists, through member m, the peer URLs of every member.
func memberPeerURLs(ctx context.Context, t *testing.T, m *framework.Member) (names, urls []string, ids []uint64) {
	t.Helper()
	ml, err := kvdClient(t, m.Endpoint).MemberList(ctx)
	if err != nil {
		t.Fatalf("member list through %s: %v", m.Name, err)
	}
	for _, mm := range ml.Members {
		names = append(names, mm.Name)
		urls = append(urls, mm.PeerURLs...)
		ids = append(ids, mm.ID)
	}
	slices.Sort(names)
	slices.Sort(urls)
	slices.Sort(ids)
	return names, urls, ids
}

// TestDiscoveryV3Bootstrap: three members started with only
// --discovery-endpoints and --discovery-token form one cluster through a
// running single kvd; a fourth started with the same token exits with
// "cluster is full".
func TestDiscoveryV3Bootstrap(t *testing.T) {
	disc := framework.StartKvd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const token = "cluster-e2e"
	if _, err := kvdClient(t, disc.Endpoint).Put(ctx, discovery.SizeKey(token), "3"); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--discovery-endpoints", disc.ClientURL(), "--discovery-token", token}
	ms := framework.StartKvdDiscovery(t, 3, nil, flags...)

	var wantURLs []string
	var wantIDs []uint64
	for _, m := range ms {
		wantURLs = append(wantURLs, m.PeerURL)
		wantIDs = append(wantIDs, membership.MemberID([]string{m.PeerURL}, token, nil))
	}
	slices.Sort(wantURLs)
	slices.Sort(wantIDs)
	for _, m := range ms {
		names, urls, ids := memberPeerURLs(ctx, t, m)
		if !slices.Equal(names, []string{"m1", "m2", "m3"}) || !slices.Equal(urls, wantURLs) || !slices.Equal(ids, wantIDs) {
			t.Fatalf("members through %s: names %v urls %v ids %x; want m1..m3, %v, %x", m.Name, names, urls, ids, wantURLs, wantIDs)
		}
	}
	if _, err := kvdClient(t, ms[0].Endpoint).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("write to the discovered cluster: %v", err)
	}

	// A restarted member knows its cluster from its data and ignores
	// discovery, which is not even reachable any more.
	disc.Stop()
	ms[0].Stop()
	ms[0].Start()
	if resp, err := kvdClient(t, ms[0].Endpoint).Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read after restart without discovery: %v %v", resp, err)
	}
	disc.Start()

	extra := framework.NewKvdDiscoveryMembers(t, 4, flags...)[3]
	extra.Launch()
	t.Cleanup(extra.Stop)
	code, exited := extra.WaitExit(30 * time.Second)
	if !exited || code == 0 || !strings.Contains(extra.Log(), "cluster is full") {
		t.Fatalf("fourth member: exited %v with %d; log:\n%s", exited, code, extra.Log())
	}
}

// TestDiscoverySRVBootstrap: three members find one another in the SRV
// records of example.test, served by a DNS server on 127.0.0.1 that
// --discovery-dns-server points them at. The records name "localhost", so
// the peers can dial one another, while each member advertises
// 127.0.0.1 and recognises itself by address.
func TestDiscoverySRVBootstrap(t *testing.T) {
	dns := framework.StartDNS(t)
	dns.AddHost("localhost", "127.0.0.1")
	ms := framework.NewKvdDiscoveryMembers(t, 3, "--discovery-srv", "example.test", "--discovery-dns-server", dns.Addr)
	var wantURLs []string
	for _, m := range ms {
		port := m.PeerURL[strings.LastIndex(m.PeerURL, ":")+1:]
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			t.Fatalf("peer URL %s: %v", m.PeerURL, err)
		}
		dns.AddSRV("_etcd-server._tcp.example.test", "localhost", uint16(p))
		wantURLs = append(wantURLs, "http://localhost:"+port)
	}
	slices.Sort(wantURLs)
	for _, m := range ms {
		m.Launch()
		t.Cleanup(m.Stop)
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range ms {
		names, urls, _ := memberPeerURLs(ctx, t, m)
		if len(names) != 3 || !slices.Contains(names, m.Name) || !slices.Equal(urls, wantURLs) {
			t.Fatalf("members through %s: names %v urls %v; want 3 with %s, %v", m.Name, names, urls, m.Name, wantURLs)
		}
	}
	if _, err := kvdClient(t, ms[1].Endpoint).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("write to the discovered cluster: %v", err)
	}
}

// TestDiscoveryWaitStops: a member waiting for the rest of its cluster to
// register stops promptly and cleanly on SIGTERM.
func TestDiscoveryWaitStops(t *testing.T) {
	disc := framework.StartKvd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := kvdClient(t, disc.Endpoint)
	if _, err := c.Put(ctx, discovery.SizeKey("waiting"), "2"); err != nil {
		t.Fatal(err)
	}
	m := framework.NewKvdDiscoveryMembers(t, 1, "--discovery-endpoints", disc.ClientURL(), "--discovery-token", "waiting")[0]
	m.Launch()
	t.Cleanup(m.Stop)
	for {
		resp, err := c.Get(ctx, discovery.MembersPrefix("waiting"), kvdclient.WithPrefix(), kvdclient.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	m.Stop()
	if d := time.Since(start); d > 5*time.Second || m.ExitCode != 0 {
		t.Fatalf("stop while waiting for discovery took %v and exited with %d; log:\n%s", d, m.ExitCode, m.Log())
	}
}
