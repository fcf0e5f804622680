package main

import (
	"io"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// tablePrinter draws member and endpoint lists as boxed tables, with
// tablewriter configured as etcdctl configures it (cells aligned right,
// headers upper-cased), so the bytes match.
type tablePrinter struct {
	out io.Writer
	noChanges
}

func (p *tablePrinter) draw(hdr []string, rows [][]string) error {
	cfg := tablewriter.NewConfigBuilder().WithRowAlignment(tw.AlignRight).Build()
	t := tablewriter.NewTable(p.out, tablewriter.WithConfig(cfg))
	t.Header(hdr)
	for _, row := range rows {
		if err := t.Append(row); err != nil {
			return failWith(exitError, err)
		}
	}
	return t.Render()
}

func (p *tablePrinter) Get(*pb.RangeResponse) error               { return unsupported("table") }
func (p *tablePrinter) Put(*pb.PutResponse) error                 { return unsupported("table") }
func (p *tablePrinter) Del(*pb.DeleteRangeResponse) error         { return unsupported("table") }
func (p *tablePrinter) Txn(*pb.TxnResponse) error                 { return unsupported("table") }
func (p *tablePrinter) MemberList(r *pb.MemberListResponse) error { return p.draw(memberRows(r)) }
func (p *tablePrinter) EndpointStatus(l []epStatus) error         { return p.draw(statusRows(l)) }
func (p *tablePrinter) EndpointHealth(l []epHealth) error         { return p.draw(healthRows(l)) }
func (p *tablePrinter) EndpointHashKV(l []epHashKV) error         { return p.draw(hashKVRows(l)) }

// protobufPrinter writes a response's wire encoding, nothing around it.
type protobufPrinter struct{ out io.Writer }

func (p *protobufPrinter) write(m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return failWith(exitError, err)
	}
	_, err = p.out.Write(b)
	return err
}

func (p *protobufPrinter) Get(r *pb.RangeResponse) error             { return p.write(r) }
func (p *protobufPrinter) Put(r *pb.PutResponse) error               { return p.write(r) }
func (p *protobufPrinter) Del(r *pb.DeleteRangeResponse) error       { return p.write(r) }
func (p *protobufPrinter) Txn(r *pb.TxnResponse) error               { return p.write(r) }
func (p *protobufPrinter) MemberList(r *pb.MemberListResponse) error { return p.write(r) }
func (p *protobufPrinter) MemberAdd(_, _ string, r *pb.MemberAddResponse) error {
	return p.write(r)
}
func (p *protobufPrinter) MemberRemove(_ uint64, r *pb.MemberRemoveResponse) error {
	return p.write(r)
}
func (p *protobufPrinter) MemberUpdate(_ uint64, r *pb.MemberUpdateResponse) error {
	return p.write(r)
}
func (p *protobufPrinter) MemberPromote(_ uint64, r *pb.MemberPromoteResponse) error {
	return p.write(r)
}
func (p *protobufPrinter) MoveLeader(_, _ uint64, r *pb.MoveLeaderResponse) error {
	return p.write(r)
}
func (p *protobufPrinter) EndpointStatus([]epStatus) error { return unsupported("protobuf") }
func (p *protobufPrinter) EndpointHealth([]epHealth) error { return unsupported("protobuf") }
func (p *protobufPrinter) EndpointHashKV([]epHashKV) error { return unsupported("protobuf") }
