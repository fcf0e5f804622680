package main

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// Watch responses in each format: the simple one lists each event's
// type, previous pair and pair; json is the whole response, fields the
// header and each event's fields; protobuf encodes the wire message
// without the watch ID; table has no layout for them.

func (p *simplePrinter) Watch(r *client.WatchResponse) error {
	for _, ev := range r.Events {
		fmt.Fprintln(p.out, ev.Type)
		if ev.PrevKv != nil {
			p.kv(ev.PrevKv)
		}
		p.kv(ev.Kv)
	}
	return nil
}

func (p *jsonPrinter) Watch(r *client.WatchResponse) error { return p.print(r) }

func (p *fieldsPrinter) Watch(r *client.WatchResponse) error {
	p.header(r.Header)
	for _, ev := range r.Events {
		fmt.Fprintln(p.out, `"Type" :`, ev.Type)
		if ev.PrevKv != nil {
			p.kv("Prev", ev.PrevKv)
		}
		p.kv("", ev.Kv)
	}
	return nil
}

func (p *protobufPrinter) Watch(r *client.WatchResponse) error {
	return p.write(&pb.WatchResponse{
		Header: r.Header, Events: r.Events, CompactRevision: r.CompactRevision,
		Canceled: r.Canceled, Created: r.Created,
	})
}

func (p *tablePrinter) Watch(*client.WatchResponse) error { return unsupported("table") }
