package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// printer writes responses in one of etcdctl's output formats.
type printer struct {
	format    string
	hex       bool
	valueOnly bool
	w         io.Writer
}

func (p printer) out() io.Writer {
	if p.w != nil {
		return p.w
	}
	return os.Stdout
}

func (p printer) unsupported() error {
	return fail(exitBadFeature, "%s not supported as output format", p.format)
}

// message prints a response that every format but simple and fields
// shows as its wire form: JSON of the message, or the raw protobuf.
func (p printer) message(m proto.Message) error {
	switch p.format {
	case "json":
		return p.json(m)
	case "protobuf":
		b, err := proto.Marshal(m)
		if err != nil {
			return failWith(exitError, err)
		}
		_, err = p.out().Write(b)
		return err
	}
	return p.unsupported()
}

func (p printer) json(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return failWith(exitError, err)
	}
	_, err = fmt.Fprintln(p.out(), string(b))
	return err
}

func (p printer) kv(kv *mvccpb.KeyValue) {
	k, v := string(kv.Key), string(kv.Value)
	if p.hex {
		k, v = hexBytes(kv.Key), hexBytes(kv.Value)
	}
	if !p.valueOnly {
		fmt.Fprintln(p.out(), k)
	}
	fmt.Fprintln(p.out(), v)
}

// hexBytes writes every byte as \xNN.
func hexBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteString(`\x`)
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

func (p printer) fieldsKV(prefix string, kv *mvccpb.KeyValue) {
	w := p.out()
	fmt.Fprintf(w, "\"%sKey\" : %q\n", prefix, string(kv.Key))
	fmt.Fprintf(w, "\"%sCreateRevision\" : %d\n", prefix, kv.CreateRevision)
	fmt.Fprintf(w, "\"%sModRevision\" : %d\n", prefix, kv.ModRevision)
	fmt.Fprintf(w, "\"%sVersion\" : %d\n", prefix, kv.Version)
	fmt.Fprintf(w, "\"%sValue\" : %q\n", prefix, string(kv.Value))
	if p.hex {
		fmt.Fprintf(w, "\"%sLease\" : %016x\n", prefix, kv.Lease)
	} else {
		fmt.Fprintf(w, "\"%sLease\" : %d\n", prefix, kv.Lease)
	}
}

func (p printer) fieldsHeader(h *pb.ResponseHeader) {
	w := p.out()
	if p.hex {
		fmt.Fprintf(w, "\"ClusterID\" : %x\n\"MemberID\" : %x\n", h.GetClusterId(), h.GetMemberId())
	} else {
		fmt.Fprintf(w, "\"ClusterID\" : %d\n\"MemberID\" : %d\n", h.GetClusterId(), h.GetMemberId())
	}
	if h.GetRevision() > 0 {
		fmt.Fprintln(w, `"Revision" :`, h.GetRevision())
	}
	fmt.Fprintln(w, `"RaftTerm" :`, h.GetRaftTerm())
}

func (p printer) get(r *pb.RangeResponse) error {
	switch p.format {
	case "simple":
		for _, kv := range r.Kvs {
			p.kv(kv)
		}
	case "fields":
		p.fieldsHeader(r.Header)
		for _, kv := range r.Kvs {
			p.fieldsKV("", kv)
		}
		fmt.Fprintln(p.out(), `"More" :`, r.More)
		fmt.Fprintln(p.out(), `"Count" :`, r.Count)
	default:
		return p.message(r)
	}
	return nil
}

func (p printer) put(r *pb.PutResponse) error {
	switch p.format {
	case "simple":
		fmt.Fprintln(p.out(), "OK")
		if r.PrevKv != nil {
			p.kv(r.PrevKv)
		}
	case "fields":
		p.fieldsHeader(r.Header)
		if r.PrevKv != nil {
			p.fieldsKV("Prev", r.PrevKv)
		}
	default:
		return p.message(r)
	}
	return nil
}

func (p printer) del(r *pb.DeleteRangeResponse) error {
	switch p.format {
	case "simple":
		fmt.Fprintln(p.out(), r.Deleted)
		for _, kv := range r.PrevKvs {
			p.kv(kv)
		}
	case "fields":
		p.fieldsHeader(r.Header)
		fmt.Fprintln(p.out(), `"Deleted" :`, r.Deleted)
		for _, kv := range r.PrevKvs {
			p.fieldsKV("Prev", kv)
		}
	default:
		return p.message(r)
	}
	return nil
}

func (p printer) txn(r *pb.TxnResponse) error {
	switch p.format {
	case "simple":
		if r.Succeeded {
			fmt.Fprintln(p.out(), "SUCCESS")
		} else {
			fmt.Fprintln(p.out(), "FAILURE")
		}
		for _, op := range r.Responses {
			fmt.Fprintln(p.out())
			if err := p.txnOp(op); err != nil {
				return err
			}
		}
	case "fields":
		p.fieldsHeader(r.Header)
		fmt.Fprintln(p.out(), `"Succeeded" :`, r.Succeeded)
		for _, op := range r.Responses {
			if err := p.txnOp(op); err != nil {
				return err
			}
		}
	case "json":
		return p.json(txnJSON(r))
	default:
		return p.message(r)
	}
	return nil
}

func (p printer) txnOp(op *pb.ResponseOp) error {
	switch v := op.Response.(type) {
	case *pb.ResponseOp_ResponseRange:
		return p.get(v.ResponseRange)
	case *pb.ResponseOp_ResponsePut:
		return p.put(v.ResponsePut)
	case *pb.ResponseOp_ResponseDeleteRange:
		return p.del(v.ResponseDeleteRange)
	}
	if p.format == "fields" {
		fmt.Fprintf(p.out(), "\"Unknown\" : %q\n", fmt.Sprintf("%+v", op.Response))
	} else {
		fmt.Fprintf(p.out(), "unexpected response %+v\n", op)
	}
	return nil
}

// txnJSON is how etcdctl shapes a txn as JSON: each response under a
// "Response" key naming its kind.
type txnJSONResp struct {
	Header    *pb.ResponseHeader `json:"header,omitempty"`
	Succeeded bool               `json:"succeeded,omitempty"`
	Responses []txnJSONOp        `json:"responses,omitempty"`
}

type txnJSONOp struct {
	Response txnJSONUnion `json:"Response"`
}

type txnJSONUnion struct {
	ResponseRange       *pb.RangeResponse       `json:"response_range,omitempty"`
	ResponsePut         *pb.PutResponse         `json:"response_put,omitempty"`
	ResponseDeleteRange *pb.DeleteRangeResponse `json:"response_delete_range,omitempty"`
	ResponseTxn         *txnJSONResp            `json:"response_txn,omitempty"`
}

func txnJSON(r *pb.TxnResponse) *txnJSONResp {
	out := &txnJSONResp{Header: r.Header, Succeeded: r.Succeeded}
	for _, op := range r.Responses {
		var u txnJSONUnion
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			u.ResponseRange = v.ResponseRange
		case *pb.ResponseOp_ResponsePut:
			u.ResponsePut = v.ResponsePut
		case *pb.ResponseOp_ResponseDeleteRange:
			u.ResponseDeleteRange = v.ResponseDeleteRange
		case *pb.ResponseOp_ResponseTxn:
			u.ResponseTxn = txnJSON(v.ResponseTxn)
		}
		out.Responses = append(out.Responses, txnJSONOp{Response: u})
	}
	return out
}

// rows prints a table-shaped result: comma-separated lines in the simple
// format, a drawn table in the table format.
func (p printer) rows(hdr []string, rows [][]string) {
	if p.format != "table" {
		for _, row := range rows {
			fmt.Fprintln(p.out(), strings.Join(row, ", "))
		}
		return
	}
	p.table(hdr, rows)
}

func (p printer) table(hdr []string, rows [][]string) {
	cfg := tablewriter.NewConfigBuilder().WithRowAlignment(tw.AlignRight)
	t := tablewriter.NewTable(p.out(), tablewriter.WithConfig(cfg.Build()))
	t.Header(hdr)
	for _, r := range rows {
		_ = t.Append(r)
	}
	_ = t.Render()
}

func memberRows(r *pb.MemberListResponse) (hdr []string, rows [][]string) {
	hdr = []string{"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"}
	for _, m := range r.Members {
		status := "started"
		if m.Name == "" {
			status = "unstarted"
		}
		rows = append(rows, []string{fmt.Sprintf("%x", m.ID), status, m.Name,
			strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), strconv.FormatBool(m.IsLearner)})
	}
	return hdr, rows
}

func statusRows(list []epStatus) (hdr []string, rows [][]string) {
	hdr = []string{"endpoint", "ID", "version", "storage version", "db size", "in use", "percentage not in use", "quota",
		"is leader", "is learner", "raft term", "raft index", "raft applied index", "errors", "downgrade target version", "downgrade enabled"}
	for _, s := range list {
		r := s.Resp
		notInUse := 0
		if r.DbSize > 0 {
			notInUse = int(100 - r.DbSizeInUse*100/r.DbSize)
		}
		rows = append(rows, []string{s.Ep, fmt.Sprintf("%x", r.GetHeader().GetMemberId()), r.Version, r.StorageVersion,
			humanize.Bytes(uint64(r.DbSize)), humanize.Bytes(uint64(r.DbSizeInUse)), fmt.Sprintf("%d%%", notInUse),
			humanize.Bytes(uint64(r.DbSizeQuota)), fmt.Sprint(r.Leader == r.GetHeader().GetMemberId()), fmt.Sprint(r.IsLearner),
			fmt.Sprint(r.RaftTerm), fmt.Sprint(r.RaftIndex), fmt.Sprint(r.RaftAppliedIndex), strings.Join(r.Errors, ", "),
			r.GetDowngradeInfo().GetTargetVersion(), strconv.FormatBool(r.GetDowngradeInfo().GetEnabled())})
	}
	return hdr, rows
}

func healthRows(list []epHealth) (hdr []string, rows [][]string) {
	hdr = []string{"endpoint", "health", "took", "error"}
	for _, h := range list {
		rows = append(rows, []string{h.Ep, fmt.Sprint(h.Health), h.Took, h.Error})
	}
	return hdr, rows
}
