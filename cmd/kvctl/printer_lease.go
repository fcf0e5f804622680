package main

import (
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kvd-io/kvd/pkg/client"
)

// Lease results in each format. etcdctl prints them from clientv3's own
// response types rather than the wire messages, and that shows: JSON
// carries the header's fields at the top level, and -w protobuf encodes
// only the header (the one embedded message) or, for a revoke, refuses.
// Lease IDs are always hexadecimal in the simple format; elsewhere
// --hex makes them so.

func (p *simplePrinter) Grant(r *client.LeaseGrantResponse) error {
	fmt.Fprintf(p.out, "lease %016x granted with TTL(%ds)\n", r.ID, r.TTL)
	return nil
}

func (p *simplePrinter) Revoke(id client.LeaseID, _ *client.LeaseRevokeResponse) error {
	fmt.Fprintf(p.out, "lease %016x revoked\n", id)
	return nil
}

func (p *simplePrinter) KeepAlive(r *client.LeaseKeepAliveResponse) error {
	fmt.Fprintf(p.out, "lease %016x keepalived with TTL(%d)\n", r.ID, r.TTL)
	return nil
}

// TimeToLive reports a lease the server does not know (granted TTL 0,
// remaining -1) as expired.
func (p *simplePrinter) TimeToLive(r *client.LeaseTimeToLiveResponse, keys bool) error {
	if r.GrantedTTL == 0 && r.TTL == -1 {
		fmt.Fprintf(p.out, "lease %016x already expired\n", r.ID)
		return nil
	}
	line := fmt.Sprintf("lease %016x granted with TTL(%ds), remaining(%ds)", r.ID, r.GrantedTTL, r.TTL)
	if keys {
		names := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			names[i] = string(k)
		}
		line += fmt.Sprintf(", attached keys(%v)", names)
	}
	fmt.Fprintln(p.out, line)
	return nil
}

func (p *simplePrinter) Leases(r *client.LeaseLeasesResponse) error {
	fmt.Fprintf(p.out, "found %d leases\n", len(r.Leases))
	for _, l := range r.Leases {
		fmt.Fprintf(p.out, "%016x\n", l.ID)
	}
	return nil
}

// The JSON shapes of clientv3's lease responses: the embedded header's
// fields come first, at the top level, then the lease's own, under
// clientv3's names (capitalised for grant and keep-alive, lower case
// for timetolive and list). --hex changes nothing here.
type (
	grantJSON struct {
		*pb.ResponseHeader
		ID    int64
		TTL   int64
		Error string
	}
	keepAliveJSON struct {
		*pb.ResponseHeader
		ID  int64
		TTL int64
	}
	timeToLiveJSON struct {
		*pb.ResponseHeader
		ID         int64    `json:"id"`
		TTL        int64    `json:"ttl"`
		GrantedTTL int64    `json:"granted-ttl"`
		Keys       [][]byte `json:"keys"`
	}
	leaseStatusJSON struct {
		ID int64 `json:"id"`
	}
	leasesJSON struct {
		*pb.ResponseHeader
		// Never nil: no leases prints as [].
		Leases []leaseStatusJSON `json:"leases"`
	}
)

func (p *jsonPrinter) Grant(r *client.LeaseGrantResponse) error {
	return p.print(grantJSON{ResponseHeader: r.Header, ID: r.ID, TTL: r.TTL, Error: r.Error})
}

func (p *jsonPrinter) Revoke(_ client.LeaseID, r *client.LeaseRevokeResponse) error {
	return p.print(r)
}

func (p *jsonPrinter) KeepAlive(r *client.LeaseKeepAliveResponse) error {
	return p.print(keepAliveJSON{ResponseHeader: r.Header, ID: r.ID, TTL: r.TTL})
}

func (p *jsonPrinter) TimeToLive(r *client.LeaseTimeToLiveResponse, _ bool) error {
	return p.print(timeToLiveJSON{ResponseHeader: r.Header, ID: r.ID, TTL: r.TTL, GrantedTTL: r.GrantedTTL, Keys: r.Keys})
}

func (p *jsonPrinter) Leases(r *client.LeaseLeasesResponse) error {
	out := leasesJSON{ResponseHeader: r.Header, Leases: make([]leaseStatusJSON, len(r.Leases))}
	for i, l := range r.Leases {
		out.Leases[i].ID = l.ID
	}
	return p.print(out)
}

// leaseID is a lease's ID in decimal, or zero-padded hex with --hex
// (unlike member IDs, which --hex leaves unpadded).
func (p *fieldsPrinter) leaseID(id int64) {
	if p.hex {
		fmt.Fprintf(p.out, "%q : %016x\n", "ID", id)
		return
	}
	p.line("ID", id)
}

func (p *fieldsPrinter) Grant(r *client.LeaseGrantResponse) error {
	p.header(r.Header)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	return nil
}

func (p *fieldsPrinter) Revoke(_ client.LeaseID, r *client.LeaseRevokeResponse) error {
	p.header(r.Header)
	return nil
}

func (p *fieldsPrinter) KeepAlive(r *client.LeaseKeepAliveResponse) error {
	p.header(r.Header)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	return nil
}

// TimeToLive lists the attached keys whenever the server sent them.
func (p *fieldsPrinter) TimeToLive(r *client.LeaseTimeToLiveResponse, _ bool) error {
	p.header(r.Header)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	p.line("GrantedTTL", r.GrantedTTL)
	for _, k := range r.Keys {
		p.quoted("Key", string(k))
	}
	return nil
}

func (p *fieldsPrinter) Leases(r *client.LeaseLeasesResponse) error {
	p.header(r.Header)
	for _, l := range r.Leases {
		p.leaseID(l.ID)
	}
	return nil
}

func (p *tablePrinter) Grant(*client.LeaseGrantResponse) error { return unsupported("table") }
func (p *tablePrinter) Revoke(client.LeaseID, *client.LeaseRevokeResponse) error {
	return unsupported("table")
}
func (p *tablePrinter) KeepAlive(*client.LeaseKeepAliveResponse) error { return unsupported("table") }
func (p *tablePrinter) TimeToLive(*client.LeaseTimeToLiveResponse, bool) error {
	return unsupported("table")
}
func (p *tablePrinter) Leases(*client.LeaseLeasesResponse) error { return unsupported("table") }

// With -w protobuf etcdctl encodes the header alone for grant, keep-alive,
// timetolive and list: in clientv3's types the header is the only
// protobuf message, embedded, so its encoding is what the response
// encodes to.
func (p *protobufPrinter) Grant(r *client.LeaseGrantResponse) error { return p.write(r.GetHeader()) }
func (p *protobufPrinter) KeepAlive(r *client.LeaseKeepAliveResponse) error {
	return p.write(r.GetHeader())
}
func (p *protobufPrinter) TimeToLive(r *client.LeaseTimeToLiveResponse, _ bool) error {
	return p.write(r.GetHeader())
}
func (p *protobufPrinter) Leases(r *client.LeaseLeasesResponse) error { return p.write(r.GetHeader()) }

// Revoke refuses, after the lease is gone, with etcdctl's message: it
// names clientv3's type, which is no protobuf message, and dumps it the
// way fmt prints that struct (the pointer inside differs on every run).
func (p *protobufPrinter) Revoke(_ client.LeaseID, r *client.LeaseRevokeResponse) error {
	return fail(exitBadFeature, "marshal unsupported for type *clientv3.LeaseRevokeResponse (&{{{} [] [] %p} %s [] 0})",
		r, headerText(r.GetHeader()))
}

// headerText is a header in protobuf's one-line text format. The
// protobuf library adds a second space between fields at random (fixed
// per binary) to keep anyone from depending on that format; this is
// the single-spaced form.
func headerText(h *pb.ResponseHeader) string {
	if h == nil {
		return "<nil>"
	}
	var fields []string
	add := func(name string, v uint64) {
		if v != 0 {
			fields = append(fields, fmt.Sprintf("%s:%d", name, v))
		}
	}
	add("cluster_id", h.ClusterId)
	add("member_id", h.MemberId)
	if h.Revision != 0 {
		fields = append(fields, fmt.Sprintf("revision:%d", h.Revision))
	}
	add("raft_term", h.RaftTerm)
	return strings.Join(fields, " ")
}
