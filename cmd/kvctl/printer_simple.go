package main

import (
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// simplePrinter is the default format: keys and values on lines of their
// own, and comma-separated rows for member and endpoint lists.
type simplePrinter struct {
	out, errOut io.Writer
	hex         bool
	// valueOnly drops the key lines (get --print-value-only).
	valueOnly bool
}

func (p *simplePrinter) kv(kv *mvccpb.KeyValue) {
	k, v := string(kv.Key), string(kv.Value)
	if p.hex {
		k, v = hexBytes(kv.Key), hexBytes(kv.Value)
	}
	if !p.valueOnly {
		fmt.Fprintln(p.out, k)
	}
	fmt.Fprintln(p.out, v)
}

func (p *simplePrinter) Get(r *pb.RangeResponse) error {
	for _, kv := range r.Kvs {
		p.kv(kv)
	}
	return nil
}

func (p *simplePrinter) Put(r *pb.PutResponse) error {
	fmt.Fprintln(p.out, "OK")
	if r.PrevKv != nil {
		p.kv(r.PrevKv)
	}
	return nil
}

func (p *simplePrinter) Del(r *pb.DeleteRangeResponse) error {
	fmt.Fprintln(p.out, r.Deleted)
	for _, kv := range r.PrevKvs {
		p.kv(kv)
	}
	return nil
}

// Txn prints the outcome, then each response after an empty line.
func (p *simplePrinter) Txn(r *pb.TxnResponse) error {
	if r.Succeeded {
		fmt.Fprintln(p.out, "SUCCESS")
	} else {
		fmt.Fprintln(p.out, "FAILURE")
	}
	for _, op := range r.Responses {
		fmt.Fprintln(p.out)
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			_ = p.Get(v.ResponseRange)
		case *pb.ResponseOp_ResponsePut:
			_ = p.Put(v.ResponsePut)
		case *pb.ResponseOp_ResponseDeleteRange:
			_ = p.Del(v.ResponseDeleteRange)
		default: // a nested txn, which the txn command cannot send
			fmt.Fprintf(p.out, "unexpected response %+v\n", op)
		}
	}
	return nil
}

func (p *simplePrinter) rows(_ []string, rows [][]string) error {
	for _, row := range rows {
		fmt.Fprintln(p.out, strings.Join(row, ", "))
	}
	return nil
}

func (p *simplePrinter) MemberList(r *pb.MemberListResponse) error { return p.rows(memberRows(r)) }

// The membership changes name the member and the cluster by their IDs,
// right-aligned in 16 columns as etcdctl prints them.

func (p *simplePrinter) MemberAdd(name, peerURLs string, r *pb.MemberAddResponse) error {
	how := "added to"
	if r.GetMember().GetIsLearner() {
		how = "added as learner to"
	}
	fmt.Fprintf(p.out, "Member %16x %s cluster %16x\n", r.GetMember().GetID(), how, r.GetHeader().GetClusterId())
	fmt.Fprint(p.out, memberAddSettings(name, peerURLs, r))
	return nil
}

func (p *simplePrinter) MemberRemove(id uint64, r *pb.MemberRemoveResponse) error {
	return p.memberChanged(id, "removed from", r.GetHeader())
}

func (p *simplePrinter) MemberUpdate(id uint64, r *pb.MemberUpdateResponse) error {
	return p.memberChanged(id, "updated in", r.GetHeader())
}

func (p *simplePrinter) MemberPromote(id uint64, r *pb.MemberPromoteResponse) error {
	return p.memberChanged(id, "promoted in", r.GetHeader())
}

func (p *simplePrinter) memberChanged(id uint64, what string, h *pb.ResponseHeader) error {
	fmt.Fprintf(p.out, "Member %16x %s cluster %16x\n", id, what, h.GetClusterId())
	return nil
}

func (p *simplePrinter) MoveLeader(leader, target uint64, _ *pb.MoveLeaderResponse) error {
	fmt.Fprintf(p.out, "Leadership transferred from %x to %x\n", leader, target)
	return nil
}
func (p *simplePrinter) EndpointStatus(l []epStatus) error { return p.rows(statusRows(l)) }
func (p *simplePrinter) EndpointHashKV(l []epHashKV) error { return p.rows(hashKVRows(l)) }

// EndpointHealth reports healthy endpoints on stdout and the others on
// stderr.
func (p *simplePrinter) EndpointHealth(list []epHealth) error {
	for _, h := range list {
		if h.Error == "" {
			fmt.Fprintf(p.out, "%s is healthy: successfully committed proposal: took = %v\n", h.Ep, h.Took)
		} else {
			fmt.Fprintf(p.errOut, "%s is unhealthy: failed to commit proposal: %v\n", h.Ep, h.Error)
		}
	}
	return nil
}
