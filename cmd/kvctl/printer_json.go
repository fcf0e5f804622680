package main

import (
	"encoding/json"
	"io"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// jsonPrinter prints each response as one line of JSON in the field names
// of etcd's API (the Go types' JSON tags): numbers as numbers, keys and
// values base64.
type jsonPrinter struct {
	out io.Writer
	// hex prints member and cluster IDs as hex strings in member lists.
	hex bool
}

func (p *jsonPrinter) print(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return failWith(exitError, err)
	}
	_, err = p.out.Write(append(b, '\n'))
	return err
}

func (p *jsonPrinter) Get(r *pb.RangeResponse) error       { return p.print(r) }
func (p *jsonPrinter) Put(r *pb.PutResponse) error         { return p.print(r) }
func (p *jsonPrinter) Del(r *pb.DeleteRangeResponse) error { return p.print(r) }
func (p *jsonPrinter) Txn(r *pb.TxnResponse) error         { return p.print(txnJSON(r)) }
func (p *jsonPrinter) EndpointStatus(l []epStatus) error   { return p.print(l) }
func (p *jsonPrinter) EndpointHealth(l []epHealth) error   { return p.print(l) }
func (p *jsonPrinter) EndpointHashKV(l []epHashKV) error   { return p.print(l) }

func (p *jsonPrinter) MemberList(r *pb.MemberListResponse) error {
	return p.members(r, r.Header, r.Members)
}

func (p *jsonPrinter) MemberRemove(_ uint64, r *pb.MemberRemoveResponse) error {
	return p.members(r, r.Header, r.Members)
}

func (p *jsonPrinter) MemberUpdate(_ uint64, r *pb.MemberUpdateResponse) error {
	return p.members(r, r.Header, r.Members)
}

func (p *jsonPrinter) MemberPromote(_ uint64, r *pb.MemberPromoteResponse) error {
	return p.members(r, r.Header, r.Members)
}

// members prints r as it is, or with --hex its header and member list
// with IDs in hexadecimal.
func (p *jsonPrinter) members(r any, h *pb.ResponseHeader, ms []*pb.Member) error {
	if !p.hex {
		return p.print(r)
	}
	return p.print(hexMemberList{Header: hexHeaderOf(h), Members: hexMembersOf(ms)})
}

func (p *jsonPrinter) MemberAdd(_, _ string, r *pb.MemberAddResponse) error {
	if !p.hex {
		return p.print(r)
	}
	return p.print(hexMemberAdd{Header: hexHeaderOf(r.Header), Member: hexMemberOf(r.Member), Members: hexMembersOf(r.Members)})
}

// MoveLeader ignores --hex, as etcdctl does: the response is a header.
func (p *jsonPrinter) MoveLeader(_, _ uint64, r *pb.MoveLeaderResponse) error { return p.print(r) }

// A txn's responses are a oneof, which encoding/json cannot name; each is
// printed as {"Response":{"response_put":{...}}}.
type txnResponseJSON struct {
	Header    *pb.ResponseHeader `json:"header,omitempty"`
	Succeeded bool               `json:"succeeded,omitempty"`
	Responses []responseOpJSON   `json:"responses,omitempty"`
}

type responseOpJSON struct {
	Response responseOneofJSON `json:"Response"`
}

type responseOneofJSON struct {
	ResponseRange       *pb.RangeResponse       `json:"response_range,omitempty"`
	ResponsePut         *pb.PutResponse         `json:"response_put,omitempty"`
	ResponseDeleteRange *pb.DeleteRangeResponse `json:"response_delete_range,omitempty"`
	ResponseTxn         *txnResponseJSON        `json:"response_txn,omitempty"`
}

func txnJSON(r *pb.TxnResponse) *txnResponseJSON {
	out := &txnResponseJSON{Header: r.Header, Succeeded: r.Succeeded}
	for _, op := range r.Responses {
		var one responseOneofJSON
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			one.ResponseRange = v.ResponseRange
		case *pb.ResponseOp_ResponsePut:
			one.ResponsePut = v.ResponsePut
		case *pb.ResponseOp_ResponseDeleteRange:
			one.ResponseDeleteRange = v.ResponseDeleteRange
		case *pb.ResponseOp_ResponseTxn:
			one.ResponseTxn = txnJSON(v.ResponseTxn)
		}
		out.Responses = append(out.Responses, responseOpJSON{Response: one})
	}
	return out
}

// With --hex, member lists show IDs as hex strings.
type hexHeader struct {
	ClusterID string `json:"cluster_id"`
	MemberID  string `json:"member_id"`
	Revision  int64  `json:"revision,omitempty"`
	RaftTerm  uint64 `json:"raft_term,omitempty"`
}

type hexMember struct {
	ID         string   `json:"ID"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

type hexMemberList struct {
	Header  *hexHeader   `json:"header"`
	Members []*hexMember `json:"members"`
}

type hexMemberAdd struct {
	Header  *hexHeader   `json:"header"`
	Member  *hexMember   `json:"member"`
	Members []*hexMember `json:"members"`
}

func hexMemberOf(m *pb.Member) *hexMember {
	if m == nil {
		return nil
	}
	return &hexMember{
		ID: strconv.FormatUint(m.ID, 16), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner,
	}
}

// hexMembersOf is never nil: an empty list prints as [].
func hexMembersOf(ms []*pb.Member) []*hexMember {
	out := make([]*hexMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, hexMemberOf(m))
	}
	return out
}

func hexHeaderOf(h *pb.ResponseHeader) *hexHeader {
	if h == nil {
		return nil
	}
	return &hexHeader{
		ClusterID: strconv.FormatUint(h.ClusterId, 16), MemberID: strconv.FormatUint(h.MemberId, 16),
		Revision: h.Revision, RaftTerm: h.RaftTerm,
	}
}
