package framework

import (
	"fmt"
	"testing"
	"time"
)

// RestoreCluster makes n new members of bin from the snapshot file: each
// member's data dir is built with `<restorer> snapshot restore` (kvctl, or
// etcdutl for etcd), all with the same new cluster token and member list,
// then they are started together and waited on until healthy, as an
// operator recovers a cluster from a backup.
func RestoreCluster(t testing.TB, restorer, bin, file, token string, n int, extra ...string) []*Member {
	t.Helper()
	ms := make([]*Member, n)
	cluster := ""
	for i := range ms {
		ms[i] = NewMemberAt(t, bin, fmt.Sprintf("r%d", i+1), PickPort(t), PickPort(t), extra...)
		if i > 0 {
			cluster += ","
		}
		cluster += ms[i].Name + "=" + ms[i].PeerURL
	}
	for _, m := range ms {
		m.Cluster = cluster
		res := Run(t, Invocation{Bin: restorer, Args: []string{"snapshot", "restore", file,
			"--name", m.Name, "--initial-cluster", cluster, "--initial-cluster-token", token,
			"--initial-advertise-peer-urls", m.PeerURL, "--data-dir", m.DataDir}})
		if res.Code != 0 {
			t.Fatalf("restore %s for %s: exit %d\n%s%s", file, m.Name, res.Code, res.Stdout, res.Stderr)
		}
	}
	for _, m := range ms {
		m.Launch()
		t.Cleanup(m.Stop)
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	return ms
}
