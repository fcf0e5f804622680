package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvd-io/kvd/tests/framework"
)

// fillForSnapshot writes a history worth a snapshot through c: keys,
// overwrites, deletions, a compaction, and a lease with keys; it returns
// the lease.
func fillForSnapshot(ctx context.Context, t *testing.T, c *clientv3.Client) clientv3.LeaseID {
	t.Helper()
	for i := range 60 {
		if _, err := c.Put(ctx, fmt.Sprintf("/app/%02d", i%40), fmt.Sprintf("value-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, "/app/1", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Put(ctx, "/app/last", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, resp.Header.Revision-10, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	l, err := c.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Put(ctx, fmt.Sprintf("/leased/%d", i), "held", clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
	}
	return l.ID
}

func saveSnapshot(t *testing.T, cli, endpoint, file string, global ...string) {
	t.Helper()
	args := append(global, "snapshot", "save", file)
	out, errOut, code := framework.RunCLI(t, cli, endpoint, args...)
	if code != 0 || !strings.HasPrefix(out, "Snapshot saved at "+file+"\n") {
		t.Fatalf("%s snapshot save: exit %d\n%s%s", cli, code, out, errOut)
	}
}

// TestKvdSnapshotReadByEtcdutl: etcd's own offline tool reads a kvd
// snapshot and finds what kvctl finds: the same hash over the file, the
// same revision, key count and size.
func TestKvdSnapshotReadByEtcdutl(t *testing.T) {
	etcdutl := framework.RequireBin(t, framework.EtcdutlBin())
	kvctl := framework.BuildKvctl(t)
	m := framework.StartKvd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fillForSnapshot(ctx, t, clientFor(t, m))
	file := filepath.Join(t.TempDir(), "kvd.db")
	saveSnapshot(t, kvctl, m.Endpoint, file)

	for _, format := range []string{"json", "table", "simple"} {
		want, wantErr, wantCode := framework.RunCLI(t, etcdutl, "", "snapshot", "status", file, "-w", format)
		got, gotErr, gotCode := framework.RunCLI(t, kvctl, "", "snapshot", "status", file, "-w", format)
		if wantCode != 0 || gotCode != 0 || got != want {
			t.Errorf("snapshot status -w %s:\n--- kvctl (exit %d)\n%s%s--- etcdutl (exit %d)\n%s%s", format, gotCode, got, gotErr, wantCode, want, wantErr)
		}
	}
	var st struct {
		Revision int64 `json:"revision"`
		TotalKey int   `json:"totalKey"`
	}
	out, _, _ := framework.RunCLI(t, etcdutl, "", "snapshot", "status", file, "-w", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	live, err := clientFor(t, m).Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != live.Header.Revision || int64(st.TotalKey) != live.Count {
		t.Errorf("etcdutl reads revision %d with %d keys; kvd is at %d with %d", st.Revision, st.TotalKey, live.Header.Revision, live.Count)
	}
	checkEtcdutlHashKV(ctx, t, etcdutl, file, clientFor(t, m), m.Endpoint)
}

// checkEtcdutlHashKV requires etcd's offline hash of a kvd database file
// (etcd's store opened over it, which also reads kvd's compaction records)
// to equal what the member that wrote it answers to HashKV.
func checkEtcdutlHashKV(ctx context.Context, t *testing.T, etcdutl, file string, c *clientv3.Client, endpoint string) {
	t.Helper()
	out, errOut, code := framework.RunCLI(t, etcdutl, "", "hashkv", file, "-w", "json")
	var offline struct {
		Hash            uint32 `json:"hash"`
		HashRevision    int64  `json:"hashRevision"`
		CompactRevision int64  `json:"compactRevision"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &offline) != nil {
		t.Fatalf("etcdutl hashkv: exit %d\n%s%s", code, out, errOut)
	}
	live, err := c.HashKV(ctx, endpoint, offline.HashRevision)
	if err != nil {
		t.Fatal(err)
	}
	if live.Hash != offline.Hash || live.CompactRevision != offline.CompactRevision {
		t.Errorf("at revision %d, etcdutl hashkv says hash %d (compacted at %d), kvd's HashKV %d (compacted at %d)",
			offline.HashRevision, offline.Hash, offline.CompactRevision, live.Hash, live.CompactRevision)
	}
}

// TestEtcdSnapshotRestoresIntoKvd: a snapshot saved by etcdctl from etcd
// v3.7.3 (keys, history compacted, a lease with keys, users and a role,
// auth on) restores with kvctl into a kvd member that serves every key,
// the lease with its TTL, the users (who can log in) and the role, and
// whose HashKV equals etcd's.
func TestEtcdSnapshotRestoresIntoKvd(t *testing.T) {
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	etcd := framework.StartEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ec := clientFor(t, etcd)
	lease := fillForSnapshot(ctx, t, ec)
	for _, args := range [][]string{
		{"user", "add", "root:rootpw"}, {"role", "add", "reader"},
		{"role", "grant-permission", "reader", "read", "/app/", "--prefix"},
		{"user", "add", "alice:alicepw"}, {"user", "grant-role", "alice", "reader"},
		{"auth", "enable"},
	} {
		if out, errOut, code := framework.RunCLI(t, etcdctl, etcd.Endpoint, args...); code != 0 {
			t.Fatalf("etcdctl %q: exit %d %s%s", args, code, out, errOut)
		}
	}
	rootEC := authClient(t, etcd.Endpoint, "root", "rootpw")
	want, err := rootEC.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	etcdHash, err := rootEC.HashKV(ctx, etcd.Endpoint, 0)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "etcd.db")
	saveSnapshot(t, etcdctl, etcd.Endpoint, file, "--user", "root:rootpw")

	rs := framework.RestoreCluster(t, kvctl, framework.KvdBin(t), file, "from-etcd", 1)
	kc := authClient(t, rs[0].Endpoint, "root", "rootpw")
	got, err := kc.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Revision != want.Header.Revision || len(got.Kvs) != len(want.Kvs) {
		t.Fatalf("kvd serves %d keys at revision %d; etcd had %d at %d", len(got.Kvs), got.Header.Revision, len(want.Kvs), want.Header.Revision)
	}
	for i, kv := range want.Kvs {
		g := got.Kvs[i]
		if string(g.Key) != string(kv.Key) || string(g.Value) != string(kv.Value) || g.CreateRevision != kv.CreateRevision ||
			g.ModRevision != kv.ModRevision || g.Version != kv.Version || g.Lease != kv.Lease {
			t.Fatalf("key %d differs:\n kvd %v\netcd %v", i, g, kv)
		}
	}
	ttl, err := kc.TimeToLive(ctx, lease, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 600 || ttl.TTL <= 0 || len(ttl.Keys) != 3 {
		t.Errorf("lease %x on kvd: granted %d, remaining %d, %d keys; want 600 with 3 keys", lease, ttl.GrantedTTL, ttl.TTL, len(ttl.Keys))
	}
	kvdHash, err := kc.HashKV(ctx, rs[0].Endpoint, etcdHash.HashRevision)
	if err != nil {
		t.Fatal(err)
	}
	if kvdHash.Hash != etcdHash.Hash || kvdHash.CompactRevision != etcdHash.CompactRevision || kvdHash.HashRevision != etcdHash.HashRevision {
		t.Errorf("HashKV: kvd %d (revision %d, compacted %d), etcd %d (revision %d, compacted %d)",
			kvdHash.Hash, kvdHash.HashRevision, kvdHash.CompactRevision, etcdHash.Hash, etcdHash.HashRevision, etcdHash.CompactRevision)
	}
	members, err := kc.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 1 || members.Members[0].Name != "r1" {
		t.Errorf("kvd lists members %v, want the restored r1 alone", members.Members)
	}
	users, err := kc.UserList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(users.Users, ",") != "alice,root" {
		t.Errorf("kvd lists users %v, want alice and root", users.Users)
	}
	alice := authClient(t, rs[0].Endpoint, "alice", "alicepw")
	if r, err := alice.Get(ctx, "/app/00"); err != nil || r.Count != 1 {
		t.Errorf("alice reads /app/00 on kvd: %v, %v", r, err)
	}
	if _, err := alice.Put(ctx, "/app/00", "no"); err == nil {
		t.Error("alice, who may only read, wrote /app/00 on kvd")
	}
}

// TestDamagedSnapshotRefused: a snapshot cut short or with a byte changed
// is refused by status and by restore, with an error that says so, and
// the restore writes nothing: no data dir, no leftovers beside it.
func TestDamagedSnapshotRefused(t *testing.T) {
	kvctl := framework.BuildKvctl(t)
	m := framework.StartKvd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fillForSnapshot(ctx, t, clientFor(t, m))
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	saveSnapshot(t, kvctl, m.Endpoint, good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// A changed value leaves the database well-formed: only the digest
	// tells.
	flipped := append([]byte(nil), data...)
	at := bytes.Index(flipped, []byte("value-59"))
	if at < 0 {
		t.Fatal("value-59 not found in the snapshot")
	}
	flipped[at] = 'V'
	pages := data[:len(data)-32] // the database alone, as copied from a data dir

	cases := []struct {
		name  string
		data  []byte
		flags []string
		want  string
	}{
		{"truncated", data[:len(data)/2+100], nil, "truncated"},
		{"truncated to a digest's offset", data[:len(data)/1024*512+32], nil, "corrupted or truncated"},
		{"corrupted", flipped, nil, "corrupted"},
		{"truncated without digest check", pages[:len(pages)/2], []string{"--skip-hash-check"}, "truncated"},
		{"no digest", pages, nil, "snapshot missing hash but --skip-hash-check=false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			file := filepath.Join(work, "bad.db")
			if err := os.WriteFile(file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(work, "restored")
			args := append([]string{"snapshot", "restore", file, "--data-dir", dataDir}, tc.flags...)
			out, errOut, code := framework.RunCLI(t, kvctl, "", args...)
			if code != 1 || !strings.Contains(errOut, "Error: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("restore: exit %d, want 1 with %q\n%s%s", code, tc.want, out, errOut)
			}
			entries, err := os.ReadDir(work)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("restore left %v beside the snapshot", entries)
			}
			if tc.flags != nil {
				return // status has no --skip-hash-check
			}
			_, errOut, code = framework.RunCLI(t, kvctl, "", "snapshot", "status", file)
			if tc.name != "no digest" && (code != 1 || !strings.Contains(errOut, tc.want)) {
				t.Errorf("status: exit %d, want 1 with %q: %s", code, tc.want, errOut)
			}
		})
	}
	// The good file restores, so the refusals above are the damage's.
	out, errOut, code := framework.RunCLI(t, kvctl, "", "snapshot", "restore", good, "--data-dir", filepath.Join(dir, "ok"))
	if code != 0 {
		t.Fatalf("restore of the undamaged file: exit %d\n%s%s", code, out, errOut)
	}
}

func clientFor(t *testing.T, m *framework.Member) *clientv3.Client {
	t.Helper()
	return authClient(t, m.Endpoint, "", "")
}

func authClient(t *testing.T, endpoint, user, password string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
