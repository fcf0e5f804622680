package main

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func (p *simplePrinter) Alarm(r *pb.AlarmResponse) error {
	for _, a := range r.GetAlarms() {
		if _, err := p.out.Write([]byte(alarmLine(a) + "\n")); err != nil {
			return err
		}
	}
	return nil
}

func (p *jsonPrinter) Alarm(r *pb.AlarmResponse) error { return p.print(r) }

// The fields format ends each alarm with an empty line, as etcdctl's.
func (p *fieldsPrinter) Alarm(r *pb.AlarmResponse) error {
	p.header(r.GetHeader())
	for _, a := range r.GetAlarms() {
		p.id("MemberID", a.GetMemberID())
		p.line("AlarmType", a.GetAlarm().String())
		if _, err := p.out.Write([]byte("\n")); err != nil {
			return err
		}
	}
	return nil
}

func (p *tablePrinter) Alarm(*pb.AlarmResponse) error { return unsupported("table") }

func (p *protobufPrinter) Alarm(r *pb.AlarmResponse) error { return p.write(r) }
