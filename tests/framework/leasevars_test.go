package framework

import "testing"

// Capture reads a grant's lease ID in every output format, in the base the
// format printed it in, including a decimal ID of sixteen digits, which
// also reads as hex.
func TestLeaseVarsCapture(t *testing.T) {
	const id = 5806047025434144780 // sixteen decimal digits: 0x509339020437300c
	for _, tc := range []struct {
		name string
		args []string
		out  string
	}{
		{"simple", []string{"lease", "grant", "60"}, "lease 509339020437300c granted with TTL(60s)\n"},
		{"fields", []string{"lease", "grant", "60", "-w", "fields"}, "\"ClusterID\" : 15118495548433857066\n\"ID\" : 5806047025434144780\n\"TTL\" : 60\n"},
		{"fields hex", []string{"lease", "grant", "60", "-w", "fields", "--hex"}, "\"ClusterID\" : d1cfaf999eb97a2a\n\"ID\" : 509339020437300c\n\"TTL\" : 60\n"},
		{"json", []string{"lease", "grant", "60", "-w", "json"}, `{"cluster_id":1,"member_id":2,"revision":1,"raft_term":2,"ID":5806047025434144780,"TTL":60,"Error":""}` + "\n"},
		{"json hex", []string{"lease", "grant", "60", "-w", "json", "--hex"}, `{"cluster_id":1,"member_id":2,"revision":1,"raft_term":2,"ID":5806047025434144780,"TTL":60,"Error":""}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l LeaseVars
			if !l.Capture("L", tc.out, tc.args) {
				t.Fatalf("no ID captured from %q", tc.out)
			}
			if l.ids[0] != id {
				t.Fatalf("captured %d (%x), want %d", l.ids[0], l.ids[0], int64(id))
			}
			if got := l.Mask("509339020437300c 5806047025434144780"); got != "<L> <L>" {
				t.Fatalf("Mask = %q", got)
			}
		})
	}
}
