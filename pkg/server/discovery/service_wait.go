package discovery

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// wait answers a long poll: the first change at or after waitIndex to
// the key (or, recursive, to anything below it), as soon as there is
// one. A wait that sees nothing for LongPoll gets an empty body, on which
// a v2 member asks again with the same index.
func (s *Service) wait(w http.ResponseWriter, r *http.Request, t tokenPath) {
	q := r.URL.Query()
	kvs, rev, verr := s.readToken(r.Context(), t)
	if verr != nil {
		writeV2Error(w, verr)
		return
	}
	if len(kvs) == 0 {
		// A wait on an unknown or expired token would never end.
		writeV2Error(w, newV2Error(codeKeyNotFound, TokenPath+t.token, rev))
		return
	}
	from := rev + 1
	if raw := q.Get("waitIndex"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			writeV2Error(w, newV2Error(codeIndexNaN, "waitIndex", rev))
			return
		}
		if n > 0 {
			from = n
		}
	}
	key, end := []byte(t.storeKey()), []byte(nil)
	below := t.dirPrefix()
	recursive := q.Get("recursive") == "true"
	if recursive {
		// The key itself and everything below it; keys that merely
		// share its spelling ("abc-d" for "abc") are skipped below.
		end = prefixEnd(below)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.LongPoll)
	defer cancel()
	stop := context.AfterFunc(s.cfg.Context, cancel)
	defer stop()
	for {
		ev, err := s.cfg.Store.NextEvent(ctx, key, end, from)
		switch {
		case errors.Is(err, ErrCompacted):
			writeV2Error(w, newV2Error(codeEventIndexCleared, "", rev))
			return
		case err != nil && r.Context().Err() == nil && s.cfg.Context.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			// Nothing happened for a whole long poll: an empty answer.
			w.Header().Set(indexHeader, strconv.FormatInt(rev, 10))
			w.WriteHeader(http.StatusOK)
			return
		case err != nil:
			if r.Context().Err() == nil {
				writeV2Error(w, s.internal("wait", t, err))
			}
			return
		}
		name := string(ev.Kv.Key)
		if recursive && name != t.storeKey() && !strings.HasPrefix(name, below) {
			from = ev.Kv.ModRevision + 1
			continue
		}
		v2 := tokenPath{token: t.token, rest: strings.TrimPrefix(name, storeKey(t.token, ""))}
		writeV2(w, http.StatusOK, ev.Kv.ModRevision, eventResponse(v2, ev))
		return
	}
}

// eventResponse describes a change as v2 did: a put that created its key
// is "create", another put "set", a removal (by hand or by the token's
// lease ending) "delete".
func eventResponse(t tokenPath, ev *mvccpb.Event) *V2Response {
	n := &V2Node{Key: t.v2Key(), ModifiedIndex: ev.Kv.ModRevision, CreatedIndex: ev.Kv.CreateRevision}
	if ev.Type == mvccpb.DELETE {
		return &V2Response{Action: "delete", Node: n}
	}
	n.Value = strPtr(string(ev.Kv.Value))
	if ev.Kv.CreateRevision == ev.Kv.ModRevision {
		return &V2Response{Action: "create", Node: n}
	}
	return &V2Response{Action: "set", Node: n}
}

// put registers a member: a key directly under the token, on the token's
// lease. prevExist=false creates only (a member's registration),
// prevExist=true replaces only, and without it the key is set either way.
func (s *Service) put(w http.ResponseWriter, r *http.Request, t tokenPath) {
	if t.rest == "" || strings.Contains(t.rest, "/") || t.rest == "_config" {
		writeV2Error(w, newV2Error(codeInvalidField, t.v2Key()+": only keys directly under the token can be written", 0))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeV2Error(w, newV2Error(codeInvalidField, "form: "+err.Error(), 0))
		return
	}
	prevExist := r.URL.Query().Get("prevExist")
	if prevExist != "" && prevExist != "true" && prevExist != "false" {
		writeV2Error(w, newV2Error(codeInvalidField, "prevExist", 0))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	size := []byte(storeKey(t.token, sizeKey))
	sresp, err := s.cfg.Store.Range(ctx, &pb.RangeRequest{Key: size})
	if err != nil {
		writeV2Error(w, s.internal("read size", t, err))
		return
	}
	if len(sresp.Kvs) == 0 {
		writeV2Error(w, newV2Error(codeKeyNotFound, TokenPath+t.token, sresp.GetHeader().GetRevision()))
		return
	}
	sizeKV := sresp.Kvs[0]
	key := []byte(t.storeKey())
	cmp := []*pb.Compare{{Key: size, Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL,
		TargetUnion: &pb.Compare_CreateRevision{CreateRevision: sizeKV.CreateRevision}}}
	switch prevExist {
	case "false":
		cmp = append(cmp, &pb.Compare{Key: key, Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_CreateRevision{}})
	case "true":
		cmp = append(cmp, &pb.Compare{Key: key, Target: pb.Compare_CREATE, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_CreateRevision{}})
	}
	resp, err := s.cfg.Store.Txn(ctx, &pb.TxnRequest{
		Compare: cmp,
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: key, Value: []byte(r.PostForm.Get("value")), Lease: sizeKV.Lease, PrevKv: true,
		}}}},
		Failure: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: size}}},
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}},
		},
	})
	if err != nil {
		if strings.Contains(err.Error(), "requested lease not found") {
			// The token's lease ended between the read and the write.
			writeV2Error(w, newV2Error(codeKeyNotFound, TokenPath+t.token, sresp.GetHeader().GetRevision()))
			return
		}
		writeV2Error(w, s.internal("register", t, err))
		return
	}
	rev := resp.GetHeader().GetRevision()
	if !resp.Succeeded {
		s.putRefused(w, t, resp, rev)
		return
	}
	put := resp.Responses[0].GetResponsePut()
	node := &V2Node{Key: t.v2Key(), Value: strPtr(r.PostForm.Get("value")), ModifiedIndex: rev, CreatedIndex: rev}
	out := &V2Response{Action: "set", Node: node}
	status := http.StatusCreated
	if prev := put.GetPrevKv(); prev != nil {
		node.CreatedIndex = prev.CreateRevision
		out.PrevNode = &V2Node{Key: t.v2Key(), Value: strPtr(string(prev.Value)), ModifiedIndex: prev.ModRevision, CreatedIndex: prev.CreateRevision}
		status = http.StatusOK
	}
	switch prevExist {
	case "false":
		out.Action = "create"
	case "true":
		out.Action = "update"
	}
	s.cfg.Logger.Info("discovery: member registered", "token", t.token, "key", t.rest, "action", out.Action)
	writeV2(w, status, rev, out)
}

// putRefused says why a conditional registration did not happen: the
// token is gone, or the key's existence was not what was asked for.
func (s *Service) putRefused(w http.ResponseWriter, t tokenPath, resp *pb.TxnResponse, rev int64) {
	if len(resp.Responses) < 2 || len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
		writeV2Error(w, newV2Error(codeKeyNotFound, TokenPath+t.token, rev))
		return
	}
	if len(resp.Responses[1].GetResponseRange().GetKvs()) > 0 {
		writeV2Error(w, newV2Error(codeNodeExist, t.v2Key(), rev))
		return
	}
	writeV2Error(w, newV2Error(codeKeyNotFound, t.v2Key(), rev))
}
