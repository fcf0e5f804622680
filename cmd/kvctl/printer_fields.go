package main

import (
	"fmt"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// fieldsPrinter prints every field as a `"Name" : value` line, strings
// quoted, for scripts that pick fields by name.
type fieldsPrinter struct {
	out io.Writer
	hex bool
	noChanges
}

func (p *fieldsPrinter) line(name string, v any) { fmt.Fprintf(p.out, "%q : %v\n", name, v) }

func (p *fieldsPrinter) quoted(name, v string) { fmt.Fprintf(p.out, "%q : %q\n", name, v) }

// id is an ID in decimal, or in hex with --hex.
func (p *fieldsPrinter) id(name string, id uint64) {
	if p.hex {
		fmt.Fprintf(p.out, "%q : %x\n", name, id)
		return
	}
	p.line(name, id)
}

func (p *fieldsPrinter) header(h *pb.ResponseHeader) {
	p.id("ClusterID", h.GetClusterId())
	p.id("MemberID", h.GetMemberId())
	// Only key-value responses carry a revision; others leave it zero.
	if h.GetRevision() > 0 {
		p.line("Revision", h.GetRevision())
	}
	p.line("RaftTerm", h.GetRaftTerm())
}

func (p *fieldsPrinter) kv(prefix string, kv *mvccpb.KeyValue) {
	p.quoted(prefix+"Key", string(kv.Key))
	p.line(prefix+"CreateRevision", kv.CreateRevision)
	p.line(prefix+"ModRevision", kv.ModRevision)
	p.line(prefix+"Version", kv.Version)
	p.quoted(prefix+"Value", string(kv.Value))
	if p.hex {
		fmt.Fprintf(p.out, "%q : %016x\n", prefix+"Lease", kv.Lease)
	} else {
		p.line(prefix+"Lease", kv.Lease)
	}
}

func (p *fieldsPrinter) Get(r *pb.RangeResponse) error {
	p.header(r.Header)
	for _, kv := range r.Kvs {
		p.kv("", kv)
	}
	p.line("More", r.More)
	p.line("Count", r.Count)
	return nil
}

func (p *fieldsPrinter) Put(r *pb.PutResponse) error {
	p.header(r.Header)
	if r.PrevKv != nil {
		p.kv("Prev", r.PrevKv)
	}
	return nil
}

func (p *fieldsPrinter) Del(r *pb.DeleteRangeResponse) error {
	p.header(r.Header)
	p.line("Deleted", r.Deleted)
	for _, kv := range r.PrevKvs {
		p.kv("Prev", kv)
	}
	return nil
}

// Txn prints the txn's header and outcome, then each response in full.
func (p *fieldsPrinter) Txn(r *pb.TxnResponse) error {
	p.header(r.Header)
	p.line("Succeeded", r.Succeeded)
	for _, op := range r.Responses {
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			_ = p.Get(v.ResponseRange)
		case *pb.ResponseOp_ResponsePut:
			_ = p.Put(v.ResponsePut)
		case *pb.ResponseOp_ResponseDeleteRange:
			_ = p.Del(v.ResponseDeleteRange)
		default: // a nested txn, which the txn command cannot send
			p.quoted("Unknown", fmt.Sprintf("%+v", v))
		}
	}
	return nil
}

func (p *fieldsPrinter) MemberList(r *pb.MemberListResponse) error {
	p.header(r.Header)
	for _, m := range r.Members {
		p.id("ID", m.ID)
		p.quoted("Name", m.Name)
		for _, u := range m.PeerURLs {
			p.quoted("PeerURL", u)
		}
		for _, u := range m.ClientURLs {
			p.quoted("ClientURL", u)
		}
		p.line("IsLearner", m.IsLearner)
		fmt.Fprintln(p.out)
	}
	return nil
}

func (p *fieldsPrinter) EndpointStatus(list []epStatus) error {
	for _, s := range list {
		r := s.Resp
		p.header(r.Header)
		p.quoted("Version", r.Version)
		p.quoted("StorageVersion", r.StorageVersion)
		p.line("DBSize", r.DbSize)
		p.line("DBSizeInUse", r.DbSizeInUse)
		p.line("DBSizeQuota", r.DbSizeQuota)
		p.line("Leader", r.Leader)
		p.line("IsLearner", r.IsLearner)
		p.line("RaftIndex", r.RaftIndex)
		p.line("RaftAppliedIndex", r.RaftAppliedIndex)
		p.line("Errors", r.Errors)
		p.quoted("Endpoint", s.Ep)
		p.quoted("DowngradeTargetVersion", r.GetDowngradeInfo().GetTargetVersion())
		p.line("DowngradeEnabled", r.GetDowngradeInfo().GetEnabled())
		fmt.Fprintln(p.out)
	}
	return nil
}

func (p *fieldsPrinter) EndpointHealth(list []epHealth) error {
	for _, h := range list {
		p.quoted("Endpoint", h.Ep)
		p.line("Health", h.Health)
		p.line("Took", h.Took)
		p.line("Error", h.Error)
		fmt.Fprintln(p.out)
	}
	return nil
}

func (p *fieldsPrinter) EndpointHashKV(list []epHashKV) error {
	for _, h := range list {
		p.header(h.Resp.Header)
		p.quoted("Endpoint", h.Ep)
		p.line("Hash", h.Resp.Hash)
		p.line("HashRevision", h.Resp.HashRevision)
		fmt.Fprintln(p.out)
	}
	return nil
}
