package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// fakeProbe is a member in a chosen state.
type fakeProbe struct {
	linearizableErr error
	learner         bool
	alarms          []pb.AlarmType
}

func (p fakeProbe) ProbeRead(_ context.Context, serializable bool) error {
	if serializable {
		return nil
	}
	return p.linearizableErr
}

func (p fakeProbe) IsLearner() bool { return p.learner }

func (p fakeProbe) ActiveAlarms() []*pb.AlarmMember {
	var out []*pb.AlarmMember
	for _, a := range p.alarms {
		out = append(out, &pb.AlarmMember{MemberID: 1, Alarm: a})
	}
	return out
}

// TestHealthStates covers the states an e2e test cannot bring about
// against etcd (alarms, a learner, a failing read with a leader), with the
// answers etcd v3.7.3's etcdhttp/health.go gives in them.
func TestHealthStates(t *testing.T) {
	timedOut := rpctypes.ErrGRPCTimeout
	tests := []struct {
		name     string
		probe    fakeProbe
		noLeader bool
		path     string
		code     int
		body     string
	}{
		{"healthy", fakeProbe{}, false, "/health", 200, `{"health":"true","reason":""}`},
		{"nospace", fakeProbe{alarms: []pb.AlarmType{pb.AlarmType_NOSPACE}}, false, "/health", 503, `{"health":"false","reason":"ALARM NOSPACE"}` + "\n"},
		{"nospace excluded", fakeProbe{alarms: []pb.AlarmType{pb.AlarmType_NOSPACE}}, false, "/health?exclude=NOSPACE", 200, `{"health":"true","reason":""}`},
		{"corrupt not excluded by NOSPACE", fakeProbe{alarms: []pb.AlarmType{pb.AlarmType_NOSPACE, pb.AlarmType_CORRUPT}}, false, "/health?exclude=NOSPACE", 503, `{"health":"false","reason":"ALARM CORRUPT"}` + "\n"},
		{"alarm before leader", fakeProbe{alarms: []pb.AlarmType{pb.AlarmType_CORRUPT}}, true, "/health", 503, `{"health":"false","reason":"ALARM CORRUPT"}` + "\n"},
		{"no leader", fakeProbe{}, true, "/health", 503, `{"health":"false","reason":"RAFT NO LEADER"}` + "\n"},
		{"no leader, serializable", fakeProbe{}, true, "/health?serializable=true", 200, `{"health":"true","reason":""}`},
		{"read fails", fakeProbe{linearizableErr: timedOut}, false, "/health", 503, `{"health":"false","reason":"RANGE ERROR:etcdserver: request timed out"}` + "\n"},
		{"read fails, serializable", fakeProbe{linearizableErr: timedOut}, false, "/health?serializable=true", 200, `{"health":"true","reason":""}`},
		{"readyz corrupt", fakeProbe{alarms: []pb.AlarmType{pb.AlarmType_CORRUPT}}, false, "/readyz",
			503, "[-]data_corruption failed: alarm activated: CORRUPT\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\n\n"},
		{"readyz nospace", fakeProbe{alarms: []pb.AlarmType{pb.AlarmType_NOSPACE}}, false, "/readyz", 200, "ok\n"},
		{"readyz learner", fakeProbe{learner: true}, false, "/readyz?exclude=data_corruption",
			503, "[+]serializable_read ok\n[+]linearizable_read ok\n[-]non_learner failed: not supported for learner\n\n"},
		{"readyz learner excluded", fakeProbe{learner: true}, false, "/readyz?exclude=non_learner&verbose",
			200, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"},
		{"readyz read fails", fakeProbe{linearizableErr: timedOut}, false, "/readyz/linearizable_read",
			503, "[-]linearizable_read failed: etcdserver: request timed out\n\n"},
		{"livez read fails elsewhere", fakeProbe{linearizableErr: timedOut}, true, "/livez?verbose", 200, "[+]serializable_read ok\nok\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewMetricsHTTP(Config{Probe: tc.probe, Alarms: tc.probe, HasLeader: func() bool { return !tc.noLeader }})
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
			}
		})
	}
}
