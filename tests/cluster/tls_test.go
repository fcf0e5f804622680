package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// tlsClient is a client of ms over https with certs' client certificate.
func tlsClient(t *testing.T, certs *framework.Certs, ms ...*framework.Member) *clientv3.Client {
	t.Helper()
	eps := make([]string, len(ms))
	for i, m := range ms {
		eps[i] = m.ClientURL()
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: certs.ClientTLS(t), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func countTLS(ctx context.Context, t *testing.T, certs *framework.Certs, m *framework.Member, prefix string) (int64, error) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := tlsClient(t, certs, m).Get(cctx, prefix, clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Count, nil
}

// TestTLSClusterBasics: three members whose peer URLs are https, with
// peer certificates required both ways, and whose clients are served over
// TLS: writes through each member are read through the others; a member
// killed and restarted catches up, by a snapshot sent over TLS; a member
// added through a follower (the change goes to the leader over the peer
// URLs) joins by asking the others over TLS who is in the cluster. Lease
// renewals through a follower and the initial corruption check also
// travel between members, over TLS.
func TestTLSClusterBasics(t *testing.T) {
	certs := framework.NewCerts(t)
	flags := []string{"--snapshot-count", "100", "--snapshot-catchup-entries", "10", "--log-level", "info"}
	ms := framework.StartClusterTLS(t, framework.KvdBin(t), 3, certs, flags...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, m := range ms {
		if _, err := tlsClient(t, certs, m).Put(ctx, fmt.Sprintf("k%d", i), "v"); err != nil {
			t.Fatalf("put through %s: %v", m.Name, err)
		}
	}
	for _, m := range ms {
		resp, err := tlsClient(t, certs, m).Get(ctx, "k", clientv3.WithPrefix())
		if err != nil || resp.Count != 3 {
			t.Fatalf("read through %s: %v %v", m.Name, resp, err)
		}
	}
	ml, err := tlsClient(t, certs, ms[0]).MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %v %v", ml, err)
	}
	for _, mem := range ml.Members {
		if len(mem.PeerURLs) != 1 || !strings.HasPrefix(mem.PeerURLs[0], "https://") || len(mem.ClientURLs) != 1 || !strings.HasPrefix(mem.ClientURLs[0], "https://") {
			t.Fatalf("member %s: peer URLs %v, client URLs %v, want https", mem.Name, mem.PeerURLs, mem.ClientURLs)
		}
	}

	st, err := tlsClient(t, certs, ms[0]).Status(ctx, ms[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	var down *framework.Member
	var up []*framework.Member
	for _, m := range ms {
		if down == nil && memberID(ml, m.Name) != st.Leader {
			down = m
		} else {
			up = append(up, m)
		}
	}
	// A follower passes lease renewals to the leader over the peer URLs.
	fc := tlsClient(t, certs, down)
	lease, err := fc.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if ka, err := fc.KeepAliveOnce(ctx, lease.ID); err != nil || ka.TTL <= 0 {
		t.Fatalf("renew a lease through a follower: %v %v", ka, err)
	}

	down.Kill()
	c := tlsClient(t, certs, up...)
	for i := range 250 {
		putRetrying(ctx, t, c, fmt.Sprintf("after/%03d", i))
	}
	// Before it serves, it compares its hash with its peers', asked over
	// the peer URLs.
	down.Extra = append(down.Extra, "--feature-gates", "InitialCorruptCheck=true")
	down.Start()
	if log := down.Log(); !strings.Contains(log, "initial corruption check passed") || strings.Contains(log, "initial corruption check skips a peer") {
		t.Fatalf("the restarted member did not compare hashes with both peers; log:\n%s", log)
	}
	eventually(t, 30*time.Second, "the restarted member catches up", func() error {
		n, err := countTLS(ctx, t, certs, down, "after/")
		if err == nil && n != 250 {
			err = fmt.Errorf("%d keys, want 250", n)
		}
		return err
	})
	if !strings.Contains(down.Log(), "installed snapshot from leader") {
		t.Fatalf("the restarted member caught up without a snapshot; log:\n%s", down.Log())
	}

	peer := fmt.Sprintf("https://127.0.0.1:%d", framework.PickPort(t))
	if _, err := tlsClient(t, certs, down).MemberAdd(ctx, []string{peer}); err != nil {
		t.Fatalf("member add through a follower: %v", err)
	}
	m4 := framework.NewJoiningMember(t, ms, "m4", peer, append(append(certs.ServerFlags(), certs.PeerFlags()...), flags...)...)
	m4.TLS = certs.ClientTLS(t)
	m4.Launch()
	m4.WaitHealthy(30 * time.Second)
	eventually(t, 30*time.Second, "the new member has every key", func() error {
		n, err := countTLS(ctx, t, certs, m4, "after/")
		if err == nil && n != 250 {
			err = fmt.Errorf("%d keys, want 250", n)
		}
		return err
	})
	ml, err = tlsClient(t, certs, m4).MemberList(ctx)
	if err != nil || len(ml.Members) != 4 || memberID(ml, "m4") == 0 {
		t.Fatalf("member list after the join: %v %v", ml, err)
	}
}

// TestTLSPeerOfAnotherCACannotJoin: a member added to the cluster whose
// peer certificate another CA signed cannot join, though it trusts the
// cluster's CA: the members refuse its certificate, so it learns nothing
// of the cluster and stops; the cluster goes on without it.
func TestTLSPeerOfAnotherCACannotJoin(t *testing.T) {
	certs := framework.NewCerts(t)
	ms := framework.StartClusterTLS(t, framework.KvdBin(t), 3, certs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := tlsClient(t, certs, ms...)
	peer := fmt.Sprintf("https://127.0.0.1:%d", framework.PickPort(t))
	if _, err := c.MemberAdd(ctx, []string{peer}); err != nil {
		t.Fatal(err)
	}
	other := framework.NewCerts(t)
	flags := append(certs.ServerFlags(),
		"--peer-cert-file", other.PeerCert, "--peer-key-file", other.PeerKey,
		"--peer-trusted-ca-file", certs.CA, "--peer-client-cert-auth")
	m4 := framework.NewJoiningMember(t, ms, "m4", peer, flags...)
	m4.TLS = certs.ClientTLS(t)
	m4.Launch()
	code, exited := m4.WaitExit(30 * time.Second)
	if !exited || code == 0 {
		t.Fatalf("the member with another CA's certificate did not fail (exited %v, code %d); log:\n%s", exited, code, m4.Log())
	}
	if !strings.Contains(m4.Log(), "certificate") {
		t.Fatalf("the member's failure does not name its certificate; log:\n%s", m4.Log())
	}
	ml, err := c.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mem := range ml.Members {
		if len(mem.PeerURLs) == 1 && mem.PeerURLs[0] == peer && mem.Name != "" {
			t.Fatalf("the refused member started: %v", mem)
		}
	}
	putRetrying(ctx, t, c, "still-serving")
}
