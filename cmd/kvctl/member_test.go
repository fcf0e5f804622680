package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kvd-io/kvd/pkg/client"
	"github.com/kvd-io/kvd/tests/framework"
)

// memberStep is one command of the membership comparison. In args,
// {{id:NAME}} is the hexadecimal ID of member NAME, {{leader}} and
// {{follower}} those of the leader and of the first follower (in start
// order) just before the step, {{peer:NAME}} a member's peer URL.
type memberStep struct {
	args []string
	// eps is whom the CLI talks to: "" for the first member alone (so
	// every answer's header names the same member), "all", or
	// "followers".
	eps string
	// msg decodes -w protobuf output, to be compared field by field.
	msg func() proto.Message
	// sortLines sorts the output's lines (member list rows follow IDs,
	// which differ between the two clusters).
	sortLines bool
	// moved checks afterwards that {{follower}} became the leader.
	moved bool
}

func ms(args ...string) memberStep { return memberStep{args: args} }

func onEps(eps string, args ...string) memberStep { return memberStep{args: args, eps: eps} }

func asPB(msg func() proto.Message, args ...string) memberStep {
	return memberStep{args: append(args, "-w", "protobuf"), msg: msg}
}

func addResp() proto.Message    { return &pb.MemberAddResponse{} }
func removeResp() proto.Message { return &pb.MemberRemoveResponse{} }
func updateResp() proto.Message { return &pb.MemberUpdateResponse{} }
func moveResp() proto.Message   { return &pb.MoveLeaderResponse{} }

// Peer URLs of added members: ports nothing listens on, as none of them
// is ever started.
const (
	peer4 = "--peer-urls=http://127.0.0.1:4"
	peer5 = "--peer-urls=http://127.0.0.1:5"
)

var memberSteps = []memberStep{
	// Mistakes caught before anything is sent, and unknown IDs.
	ms("member", "add"),
	ms("member", "add", "a", "b", "http://x", "HTTP://y"),
	ms("member", "add", "m4"),
	ms("member", "add", "m4", "--peer-urls=foo"),
	ms("member", "add", "m4", "--peer-urls=http://x/y"),
	ms("member", "add", "m4", "--peer-urls=http://127.0.0.1:4/y"),
	ms("member", "add", "m4", "--peer-urls={{peer:m2}}"),
	ms("member", "remove"),
	ms("member", "remove", "a", "b"),
	ms("member", "remove", "zz"),
	ms("member", "remove", "1234"),
	ms("member", "remove", "12345678901234567"),
	ms("member", "update", "1234"),
	ms("member", "update", "zz", peer4),
	ms("member", "update", "1234", peer4),
	ms("member", "update", "{{id:m2}}", "--peer-urls=nope"),
	ms("member", "promote"),
	ms("member", "promote", "-1"),
	ms("member", "promote", "1234"),
	ms("member", "promote", "{{id:m2}}"),
	ms("move-leader"),
	ms("move-leader", "zz"),
	onEps("all", "move-leader", "1234"),
	onEps("followers", "move-leader", "{{follower}}"),
	ms("move-leader", "{{follower}}", "extra"),
	// A learner: added, refused promotion, updated, removed.
	ms("member", "add", "m4", peer4, "--learner"),
	ms("member", "add", "m5", peer5, "--learner", "-w", "json"),
	ms("member", "promote", "{{id:m4}}"),
	ms("member", "promote", "{{id:m4}}", "-w", "json"),
	ms("member", "update", "{{id:m4}}", "--peer-urls=http://127.0.0.1:14"),
	ms("member", "update", "{{id:m4}}", "--peer-urls=http://127.0.0.1:24,http://127.0.0.1:34", "-w", "json"),
	ms("member", "update", "{{id:m4}}", "--peer-urls=http://127.0.0.1:44", "-w", "json", "--hex"),
	ms("member", "update", "{{id:m4}}", "--peer-urls=http://127.0.0.1:54", "-w", "fields"),
	ms("member", "update", "{{id:m4}}", "--peer-urls=http://127.0.0.1:64", "-w", "table"),
	asPB(updateResp, "member", "update", "{{id:m4}}", "--peer-urls=http://127.0.0.1:74"),
	{args: []string{"member", "list"}, sortLines: true},
	ms("member", "list", "-w", "json"),
	ms("member", "remove", "{{id:m4}}"),
	ms("member", "remove", "{{id:m4}}"),
	// Every output format of add and remove.
	ms("member", "add", "m5", peer5, "--learner", "-w", "json"),
	ms("member", "remove", "{{id:m5}}", "-w", "json"),
	ms("member", "add", "m6", "--peer-urls=http://127.0.0.1:6", "--learner", "-w", "json", "--hex"),
	ms("member", "remove", "{{id:m6}}", "-w", "json", "--hex"),
	ms("member", "add", "m7", "--peer-urls=http://127.0.0.1:7", "--learner", "-w", "fields"),
	ms("member", "remove", "{{id:m7}}", "-w", "fields"),
	ms("member", "add", "m8", "--peer-urls=http://127.0.0.1:8", "--learner", "-w", "table"),
	ms("member", "remove", "{{id:m8}}", "-w", "table"),
	asPB(addResp, "member", "add", "m9", "--peer-urls=http://127.0.0.1:9", "--learner"),
	asPB(removeResp, "member", "remove", "{{id:m9}}"),
	// Voters that never start: the third is one too many for the quorum.
	ms("member", "add", "m10", "--peer-urls=http://127.0.0.1:10,http://127.0.0.1:110"),
	ms("member", "add", "m11", "--peer-urls=http://127.0.0.1:11", "-w", "json"),
	ms("member", "add", "m12", "--peer-urls=http://127.0.0.1:12"),
	{args: []string{"member", "list"}, sortLines: true},
	ms("member", "remove", "{{id:m11}}"),
	ms("member", "remove", "{{id:m10}}"),
	// Leadership: each transfer is made, whatever the format then says.
	onEps("all", "move-leader", "{{follower}}", "-w", "fields"),
	onEps("all", "move-leader", "{{follower}}", "-w", "table"),
	onEps("all", "move-leader", "{{follower}}", "-w", "json"),
	{args: []string{"move-leader", "{{follower}}", "-w", "protobuf"}, eps: "all", msg: moveResp},
	{args: []string{"move-leader", "{{follower}}"}, eps: "all", moved: true},
	onEps("all", "move-leader", "{{leader}}"),
}

// TestMemberSameAsEtcdctl runs memberSteps with etcdctl against one
// three-member etcd and with kvctl against another, and compares each
// step's output and exit code once the IDs, ports and orders that differ
// between the two clusters are replaced by names.
func TestMemberSameAsEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two three-member etcd clusters; skipped with -short")
	}
	etcd := framework.RequireBin(t, framework.EtcdBin())
	etcdctl := framework.RequireBin(t, framework.EtcdctlBin())
	kvctl := framework.BuildKvctl(t)
	clusterA := framework.StartCluster(t, etcd, 3)
	clusterB := framework.StartCluster(t, etcd, 3)
	// etcd refuses membership changes until its peers have been
	// connected for five seconds.
	time.Sleep(6 * time.Second)
	want := runMemberSteps(t, etcdctl, clusterA)
	got := runMemberSteps(t, kvctl, clusterB)
	for i, st := range memberSteps {
		if got[i] != want[i] {
			t.Errorf("step %d %q differs\n--- kvctl: exit %d\nstdout:\n%s\nstderr:\n%s\n--- etcdctl: exit %d\nstdout:\n%s\nstderr:\n%s",
				i, st.args, got[i].Code, got[i].Stdout, got[i].Stderr, want[i].Code, want[i].Stdout, want[i].Stderr)
		}
	}
}

// memberRun follows one cluster through the steps: which ID is which
// member, and who leads.
type memberRun struct {
	t       *testing.T
	members []*framework.Member
	c       *client.Client
	names   map[uint64]string // member ID to name
	peers   map[string]string // first peer URL of a member to add, to its name
	cluster uint64
	roles   map[string]uint64 // "leader", "follower1", "follower2"
	roleEps map[string]string // the same roles' endpoints
	last    framework.Result  // the previous step's, for failure messages
}

func runMemberSteps(t *testing.T, bin string, members []*framework.Member) []framework.Result {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{members[0].Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &memberRun{t: t, members: members, c: c, names: map[uint64]string{}, peers: map[string]string{}}
	r.learnMembers()
	out := make([]framework.Result, len(memberSteps))
	for i, st := range memberSteps {
		r.findRoles()
		args := r.expand(st.args)
		if len(args) > 2 && args[0] == "member" && args[1] == "add" {
			for _, a := range args {
				if u, ok := strings.CutPrefix(a, "--peer-urls="); ok {
					first, _, _ := strings.Cut(u, ",")
					r.peers[first] = args[2]
				}
			}
		}
		res := framework.Run(t, framework.Invocation{Bin: bin, Endpoints: r.endpoints(st.eps), Args: args})
		r.last = res
		r.learnMembers()      // before normalizing: the output may name a new member
		roles := st.eps != "" // only then may the answer come from any member
		out[i] = framework.Result{Stdout: r.normalize(res.Stdout, st, roles), Stderr: r.normalize(res.Stderr, st, roles), Code: res.Code}
		if st.moved {
			before := r.roles["follower1"]
			r.findRoles()
			if r.roles["leader"] != before {
				t.Errorf("%s: after move-leader the leader is %x, want %x", bin, r.roles["leader"], before)
			}
		}
	}
	return out
}

func (r *memberRun) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// learnMembers names the members that appeared since the last step.
func (r *memberRun) learnMembers() {
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.c.MemberList(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cluster = resp.Header.ClusterId
	for _, m := range resp.Members {
		if _, ok := r.names[m.ID]; ok {
			continue
		}
		name := m.Name
		if name == "" && len(m.PeerURLs) > 0 {
			name = r.peers[m.PeerURLs[0]]
		}
		if name == "" {
			r.t.Fatalf("cannot name member %+v", m)
		}
		r.names[m.ID] = name
	}
}

// findRoles asks the first three members who leads.
func (r *memberRun) findRoles() {
	ctx, cancel := r.ctx()
	defer cancel()
	r.roles, r.roleEps = map[string]uint64{}, map[string]string{}
	n := 0
	for _, m := range r.members {
		st, err := r.c.Status(ctx, m.Endpoint)
		if err != nil {
			r.t.Fatal(err)
		}
		role := "leader"
		if st.Header.MemberId != st.Leader {
			n++
			role = fmt.Sprintf("follower%d", n)
		}
		r.roles[role], r.roleEps[role] = st.Header.MemberId, m.Endpoint
	}
	if _, ok := r.roles["leader"]; !ok || n != 2 {
		r.t.Fatalf("no single leader: %v", r.roles)
	}
}

func (r *memberRun) idOf(name string) uint64 {
	for id, n := range r.names {
		if n == name {
			return id
		}
	}
	r.t.Fatalf("no member %s; the step before printed %+v", name, r.last)
	return 0
}

var placeholderRe = regexp.MustCompile(`\{\{(\w+)(?::(\w+))?\}\}`)

func (r *memberRun) expand(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = placeholderRe.ReplaceAllStringFunc(a, func(p string) string {
			m := placeholderRe.FindStringSubmatch(p)
			switch m[1] {
			case "id":
				return fmt.Sprintf("%x", r.idOf(m[2]))
			case "peer":
				for _, mem := range r.members {
					if mem.Name == m[2] {
						return mem.PeerURL
					}
				}
			case "leader":
				return fmt.Sprintf("%x", r.roles["leader"])
			case "follower":
				return fmt.Sprintf("%x", r.roles["follower1"])
			}
			r.t.Fatalf("unknown placeholder %s", p)
			return ""
		})
	}
	return out
}

func (r *memberRun) endpoints(which string) string {
	switch which {
	case "all":
		return framework.Endpoints(r.members)
	case "followers":
		return r.roleEps["follower1"] + "," + r.roleEps["follower2"]
	}
	return r.members[0].Endpoint
}

var (
	paddingRe       = regexp.MustCompile(` {2,}<`)
	raftTermRe      = regexp.MustCompile(`("raft_term":\s*"?|"raftTerm":\s*"|"RaftTerm" : )\d+`)
	initialRe       = regexp.MustCompile(`ETCD_INITIAL_CLUSTER="([^"]*)"`)
	jsonMembersRe   = regexp.MustCompile(`"members":\s*\[`)
	etcdctlNameRe   = regexp.MustCompile(`\b(etcdctl|kvctl)\b`)
	hexOrDecimalIDs = func(id uint64) []string {
		return []string{fmt.Sprintf("%16x", id), fmt.Sprintf("%x", id), fmt.Sprintf("%d", id)}
	}
)

// normalize replaces what differs between the two clusters: member IDs
// by names (by roles, leader and followers, when the step may be
// answered by any member), the cluster ID, ports, raft terms, and the
// order of members, which follows their IDs.
func (r *memberRun) normalize(s string, st memberStep, roles bool) string {
	if st.msg != nil && s != "" && !strings.HasPrefix(s, "Error:") {
		m := st.msg()
		if err := proto.Unmarshal([]byte(s), m); err != nil {
			return "undecodable protobuf: " + err.Error()
		}
		s = protojson.Format(m)
	}
	// Our help texts are our own; the error line before them must match.
	s = usageRe.ReplaceAllString(framework.Normalize(s), "USAGE")
	var pairs []string
	label := func(id uint64, name string) {
		for _, form := range hexOrDecimalIDs(id) {
			// A padded ID keeps its padding, so that it matches the same
			// ID printed unpadded after a space; the padding itself,
			// which depends on the ID, is evened out below.
			pad := form[:len(form)-len(strings.TrimLeft(form, " "))]
			pairs = append(pairs, form, pad+"<"+name+">")
		}
	}
	if roles {
		for role, id := range r.roles {
			label(id, role)
		}
		for role, ep := range r.roleEps {
			pairs = append(pairs, ep, "<"+role+"-ep>")
		}
	}
	for id, name := range r.names {
		label(id, name)
	}
	label(r.cluster, "cluster")
	for _, m := range r.members {
		pairs = append(pairs, m.PeerURL, "<"+m.Name+"-peer>", m.Endpoint, "<"+m.Name+"-ep>")
	}
	// Longer forms first, so that a padded ID is replaced whole.
	type pair struct{ from, to string }
	var ps []pair
	for i := 0; i < len(pairs); i += 2 {
		ps = append(ps, pair{pairs[i], pairs[i+1]})
	}
	sort.SliceStable(ps, func(i, j int) bool { return len(ps[i].from) > len(ps[j].from) })
	for _, p := range ps {
		s = strings.ReplaceAll(s, p.from, p.to)
	}
	s = paddingRe.ReplaceAllString(s, " <")
	s = raftTermRe.ReplaceAllString(s, "${1}T")
	s = etcdctlNameRe.ReplaceAllString(s, "CLI")
	s = initialRe.ReplaceAllStringFunc(s, func(m string) string {
		v := initialRe.FindStringSubmatch(m)[1]
		parts := strings.Split(v, ",")
		slices.Sort(parts)
		return `ETCD_INITIAL_CLUSTER="` + strings.Join(parts, ",") + `"`
	})
	s = sortJSONMembers(s)
	if st.sortLines {
		lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		slices.Sort(lines)
		s = strings.Join(lines, "\n") + "\n"
	}
	return s
}

// sortJSONMembers sorts the elements of every "members" array.
func sortJSONMembers(s string) string {
	locs := jsonMembersRe.FindAllStringIndex(s, -1)
	for i := len(locs) - 1; i >= 0; i-- {
		start := locs[i][1]
		depth, end := 0, -1
		var elems []string
		from := start
		for j := start; j < len(s) && end < 0; j++ {
			switch s[j] {
			case '[', '{':
				depth++
			case ']', '}':
				if depth == 0 {
					end = j
					elems = append(elems, s[from:j])
				}
				depth--
			case ',':
				if depth == 0 {
					elems = append(elems, s[from:j])
					from = j + 1
				}
			}
		}
		if end < 0 {
			continue
		}
		for k := range elems {
			elems[k] = strings.TrimSpace(elems[k])
		}
		slices.Sort(elems)
		s = s[:start] + strings.Join(elems, ",") + s[end:]
	}
	return s
}

// TestMemberChangePrinters pins the bytes the cluster comparison cannot:
// IDs there are replaced whole, padding and key order included.
func TestMemberChangePrinters(t *testing.T) {
	h := &pb.ResponseHeader{ClusterId: 0xabc, MemberId: 0x123, RaftTerm: 2}
	learner := &pb.Member{ID: 0x4d, PeerURLs: []string{"http://p4"}, IsLearner: true}
	voter := &pb.Member{ID: 0x123, Name: "m1", PeerURLs: []string{"http://p1", "http://p1b"}, ClientURLs: []string{"http://c1"}}
	add := &pb.MemberAddResponse{Header: h, Member: learner, Members: []*pb.Member{voter, learner}}
	remove := &pb.MemberRemoveResponse{Header: h, Members: []*pb.Member{voter}}
	for _, tt := range []struct {
		format string
		hex    bool
		call   func(printer) error
		want   string
	}{
		{"simple", false, func(p printer) error { return p.MemberAdd("m4", "http://p4", add) },
			"Member               4d added as learner to cluster              abc\n\nETCD_NAME=\"m4\"\n" +
				"ETCD_INITIAL_CLUSTER=\"m1=http://p1,m1=http://p1b,m4=http://p4\"\n" +
				"ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://p4\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"},
		{"simple", false, func(p printer) error { return p.MemberRemove(0xfedcba9876543210, remove) },
			"Member fedcba9876543210 removed from cluster              abc\n"},
		{"simple", true, func(p printer) error { return p.MemberUpdate(0x4d, &pb.MemberUpdateResponse{Header: h}) },
			"Member               4d updated in cluster              abc\n"},
		{"simple", false, func(p printer) error { return p.MemberPromote(0x4d, &pb.MemberPromoteResponse{Header: h}) },
			"Member               4d promoted in cluster              abc\n"},
		{"simple", false, func(p printer) error { return p.MoveLeader(0x123, 0x4d, &pb.MoveLeaderResponse{}) },
			"Leadership transferred from 123 to 4d\n"},
		{"json", false, func(p printer) error { return p.MemberRemove(0x4d, remove) },
			`{"header":{"cluster_id":2748,"member_id":291,"raft_term":2},"members":[{"ID":291,"name":"m1","peerURLs":["http://p1","http://p1b"],"clientURLs":["http://c1"]}]}` + "\n"},
		{"json", true, func(p printer) error { return p.MemberAdd("m4", "http://p4", add) },
			`{"header":{"cluster_id":"abc","member_id":"123","raft_term":2},"member":{"ID":"4d","peerURLs":["http://p4"],"isLearner":true},` +
				`"members":[{"ID":"123","name":"m1","peerURLs":["http://p1","http://p1b"],"clientURLs":["http://c1"]},{"ID":"4d","peerURLs":["http://p4"],"isLearner":true}]}` + "\n"},
		{"json", true, func(p printer) error { return p.MemberPromote(0x4d, &pb.MemberPromoteResponse{Header: h}) },
			`{"header":{"cluster_id":"abc","member_id":"123","raft_term":2},"members":[]}` + "\n"},
		{"json", true, func(p printer) error { return p.MoveLeader(1, 2, &pb.MoveLeaderResponse{Header: h}) },
			`{"header":{"cluster_id":2748,"member_id":291,"raft_term":2}}` + "\n"},
		{"fields", false, func(p printer) error { return p.MemberAdd("m4", "http://p4", add) }, "refused: fields not supported as output format"},
		{"table", false, func(p printer) error { return p.MoveLeader(1, 2, &pb.MoveLeaderResponse{}) }, "refused: table not supported as output format"},
	} {
		var stdout, stderr bytes.Buffer
		p, err := newPrinter(tt.format, tt.hex, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := tt.call(p); err != nil {
			got = "refused: " + err.Error()
			if exitCode(err) != exitBadFeature {
				t.Errorf("%s: exit code %d", tt.format, exitCode(err))
			}
		} else {
			got = stdout.String()
		}
		if got != tt.want {
			t.Errorf("%s (hex %v):\n got %q\nwant %q", tt.format, tt.hex, got, tt.want)
		}
	}
}
