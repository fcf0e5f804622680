package membership

import (
	"strings"
	"testing"
	"time"
)

// The expected IDs are what etcd v3.7.3 prints for the same flags, so a
// kvd member and an etcd member started alike agree on who they are.
func TestIDsMatchEtcd(t *testing.T) {
	tests := []struct {
		name, cluster, token string
		memberID, clusterID  uint64
	}{
		{"etcd defaults", "default=http://localhost:2380", "etcd-cluster", 0x8e9e05c52164694d, 0xcdf818194e3a8c32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseInitialCluster(tt.cluster, tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 || ms[0].ID != tt.memberID {
				t.Fatalf("member ID = %x, want %x", ms[0].ID, tt.memberID)
			}
			if got := ClusterID([]uint64{ms[0].ID}); got != tt.clusterID {
				t.Fatalf("cluster ID = %x, want %x", got, tt.clusterID)
			}
		})
	}
}

func TestParseInitialCluster(t *testing.T) {
	tests := []struct {
		in      string
		names   []string
		wantErr string
	}{
		{in: "a=http://127.0.0.1:1,b=http://127.0.0.1:2", names: []string{"a", "b"}},
		{in: "a=http://127.0.0.1:1,a=http://127.0.0.1:3", names: []string{"a"}},
		{in: "", wantErr: "names no member"},
		{in: "a", wantErr: "not name=url"},
		{in: "a=127.0.0.1:1", wantErr: "scheme and host"},
		{in: "a=http://127.0.0.1:1,b=http://127.0.0.1:1", wantErr: "share peer URLs"},
	}
	for _, tt := range tests {
		ms, err := ParseInitialCluster(tt.in, "tok")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		var names []string
		for _, m := range ms {
			names = append(names, m.Name)
		}
		if strings.Join(names, ",") != strings.Join(tt.names, ",") {
			t.Errorf("%q: names %v, want %v", tt.in, names, tt.names)
		}
	}
}

func TestMemberIDDependsOnTokenAndTime(t *testing.T) {
	urls := []string{"http://127.0.0.1:2380"}
	now := time.Unix(1700000000, 0)
	a := MemberID(urls, "one", nil)
	if a == MemberID(urls, "two", nil) {
		t.Fatal("different tokens gave the same member ID")
	}
	if a == MemberID(urls, "one", &now) {
		t.Fatal("adding a time did not change the member ID")
	}
	if a != MemberID(urls, "one", nil) {
		t.Fatal("member ID is not deterministic")
	}
}

func TestClusterMembersAreCopies(t *testing.T) {
	c := NewCluster(1, 2, []*Member{{ID: 2, Name: "x", PeerURLs: []string{"http://a"}}})
	ms := c.Members()
	ms[0].Name = "changed"
	ms[0].PeerURLs[0] = "changed"
	if got := c.Member(2); got.Name != "x" || got.PeerURLs[0] != "http://a" {
		t.Fatalf("caller changed the cluster's member: %+v", got)
	}
}

func TestLocalIsLearnerFollowsChanges(t *testing.T) {
	c := NewCluster(1, 7, []*Member{{ID: 7, IsLearner: true}, {ID: 8}})
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"started as a learner", func() {}, true},
		{"promoted", func() { c.Add(&Member{ID: 7}) }, false},
		{"another member added as learner", func() { c.Add(&Member{ID: 9, IsLearner: true}) }, false},
		{"snapshot lists it as learner", func() { c.Replace([]*Member{{ID: 7, IsLearner: true}}) }, true},
		{"removed", func() { c.Remove(7) }, false},
	}
	for _, st := range steps {
		st.do()
		if got := c.LocalIsLearner(); got != st.want {
			t.Fatalf("%s: LocalIsLearner %v, want %v", st.name, got, st.want)
		}
	}
}

func TestLocalIsSoleVoterFollowsChanges(t *testing.T) {
	c := NewCluster(1, 7, []*Member{{ID: 7}})
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"a single member", func() {}, true},
		{"a learner added", func() { c.Add(&Member{ID: 8, IsLearner: true}) }, true},
		{"the learner promoted", func() { c.Add(&Member{ID: 8}) }, false},
		{"the other voter removed", func() { c.Remove(8) }, true},
		{"demoted by a snapshot, another voter", func() { c.Replace([]*Member{{ID: 7, IsLearner: true}, {ID: 9}}) }, false},
		{"removed itself", func() { c.Replace([]*Member{{ID: 9}}) }, false},
	}
	for _, st := range steps {
		st.do()
		if got := c.LocalIsSoleVoter(); got != st.want {
			t.Fatalf("%s: LocalIsSoleVoter %v, want %v", st.name, got, st.want)
		}
	}
}
