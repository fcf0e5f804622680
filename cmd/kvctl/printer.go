package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// printer writes command results in one output format (-w). A format
// that cannot show a result returns an exitBadFeature error, as etcdctl
// does ("table not supported as output format").
type printer interface {
	Get(*pb.RangeResponse) error
	Put(*pb.PutResponse) error
	Del(*pb.DeleteRangeResponse) error
	Txn(*pb.TxnResponse) error
	MemberList(*pb.MemberListResponse) error
	// MemberAdd is given the new member's name and peer URLs as typed,
	// for the settings the simple format prints.
	MemberAdd(name, peerURLs string, r *pb.MemberAddResponse) error
	MemberRemove(id uint64, r *pb.MemberRemoveResponse) error
	MemberUpdate(id uint64, r *pb.MemberUpdateResponse) error
	MemberPromote(id uint64, r *pb.MemberPromoteResponse) error
	MoveLeader(leader, target uint64, r *pb.MoveLeaderResponse) error
	EndpointStatus([]epStatus) error
	EndpointHealth([]epHealth) error
	EndpointHashKV([]epHashKV) error
	Watch(*client.WatchResponse) error
	Grant(*client.LeaseGrantResponse) error
	// Revoke is given the revoked lease's ID: the response does not name it.
	Revoke(id client.LeaseID, r *client.LeaseRevokeResponse) error
	KeepAlive(*client.LeaseKeepAliveResponse) error
	// TimeToLive is told whether the attached keys were asked for.
	TimeToLive(r *client.LeaseTimeToLiveResponse, keys bool) error
	Leases(*client.LeaseLeasesResponse) error
	// Auth prints the answer of a user, role or auth command.
	Auth(authResult) error
	// Alarm prints the alarms an alarm list or disarm answered.
	Alarm(*pb.AlarmResponse) error
}

// epStatus, epHealth and epHashKV are one endpoint's answer; their JSON
// names are those etcdctl prints.
type epStatus struct {
	Ep   string             `json:"Endpoint"`
	Resp *pb.StatusResponse `json:"Status"`
}

type epHealth struct {
	Ep     string `json:"endpoint"`
	Health bool   `json:"health"`
	Took   string `json:"took"`
	Error  string `json:"error,omitempty"`
}

type epHashKV struct {
	Ep   string             `json:"Endpoint"`
	Resp *pb.HashKVResponse `json:"HashKV"`
}

// newPrinter picks the printer for format; out takes results, errOut the
// per-endpoint failures some formats report beside them.
func newPrinter(format string, isHex bool, out, errOut io.Writer) (printer, error) {
	switch format {
	case "simple":
		return &simplePrinter{out: out, errOut: errOut, hex: isHex}, nil
	case "fields":
		return &fieldsPrinter{out: out, hex: isHex, noChanges: noChanges{"fields"}}, nil
	case "json":
		return &jsonPrinter{out: out, hex: isHex}, nil
	case "protobuf":
		return &protobufPrinter{out: out}, nil
	case "table":
		return &tablePrinter{out: out, noChanges: noChanges{"table"}}, nil
	}
	return nil, fail(exitBadFeature, "unsupported output format")
}

// unsupported is what a format says about a result it cannot show.
func unsupported(format string) error {
	return fail(exitBadFeature, "%s not supported as output format", format)
}

// noChanges is the part of a printer for a format that, as in etcdctl,
// has no layout for membership and leadership changes: the change is
// made, then the format is refused.
type noChanges struct{ format string }

func (n noChanges) MemberAdd(string, string, *pb.MemberAddResponse) error {
	return unsupported(n.format)
}
func (n noChanges) MemberRemove(uint64, *pb.MemberRemoveResponse) error {
	return unsupported(n.format)
}
func (n noChanges) MemberUpdate(uint64, *pb.MemberUpdateResponse) error {
	return unsupported(n.format)
}
func (n noChanges) MemberPromote(uint64, *pb.MemberPromoteResponse) error {
	return unsupported(n.format)
}
func (n noChanges) MoveLeader(uint64, uint64, *pb.MoveLeaderResponse) error {
	return unsupported(n.format)
}

// hexBytes writes every byte as \xNN.
func hexBytes(b []byte) string {
	var sb strings.Builder
	sb.Grow(4 * len(b))
	for _, c := range b {
		sb.WriteString(`\x`)
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// The rows below are shared by the simple format (one comma-separated
// line per row) and the table format.

func memberRows(r *pb.MemberListResponse) (hdr []string, rows [][]string) {
	hdr = []string{"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"}
	for _, m := range r.GetMembers() {
		status := "started"
		if m.Name == "" {
			status = "unstarted" // added, but has not joined yet
		}
		rows = append(rows, []string{
			strconv.FormatUint(m.ID, 16), status, m.Name,
			strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), strconv.FormatBool(m.IsLearner),
		})
	}
	return hdr, rows
}

func statusRows(list []epStatus) (hdr []string, rows [][]string) {
	hdr = []string{"endpoint", "ID", "version", "storage version", "db size", "in use", "percentage not in use", "quota",
		"is leader", "is learner", "raft term", "raft index", "raft applied index", "errors",
		"downgrade target version", "downgrade enabled"}
	for _, s := range list {
		r := s.Resp
		free := int64(0)
		if r.DbSize > 0 {
			free = 100 - r.DbSizeInUse*100/r.DbSize
		}
		id := r.GetHeader().GetMemberId()
		rows = append(rows, []string{
			s.Ep, strconv.FormatUint(id, 16), r.Version, r.StorageVersion,
			humanize.Bytes(uint64(r.DbSize)), humanize.Bytes(uint64(r.DbSizeInUse)), fmt.Sprintf("%d%%", free),
			humanize.Bytes(uint64(r.DbSizeQuota)),
			strconv.FormatBool(r.Leader == id), strconv.FormatBool(r.IsLearner),
			strconv.FormatUint(r.RaftTerm, 10), strconv.FormatUint(r.RaftIndex, 10), strconv.FormatUint(r.RaftAppliedIndex, 10),
			strings.Join(r.Errors, ", "),
			r.GetDowngradeInfo().GetTargetVersion(), strconv.FormatBool(r.GetDowngradeInfo().GetEnabled()),
		})
	}
	return hdr, rows
}

func healthRows(list []epHealth) (hdr []string, rows [][]string) {
	hdr = []string{"endpoint", "health", "took", "error"}
	for _, h := range list {
		rows = append(rows, []string{h.Ep, strconv.FormatBool(h.Health), h.Took, h.Error})
	}
	return hdr, rows
}

func hashKVRows(list []epHashKV) (hdr []string, rows [][]string) {
	hdr = []string{"endpoint", "hash", "hash_revision"}
	for _, h := range list {
		rows = append(rows, []string{h.Ep, strconv.FormatUint(uint64(h.Resp.Hash), 10), strconv.FormatInt(h.Resp.HashRevision, 10)})
	}
	return hdr, rows
}
