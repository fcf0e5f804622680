package discovery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// The discovery-URL protocol is a small part of etcd v2's keys API: the
// public discovery service was an etcd v2 cluster, and members spoke to
// it with the v2 client. These are its JSON shapes and the error codes a
// member can meet, which both the service and kvd's own member side use.

// v2 error codes, with the HTTP status and message etcd v2 gave each.
const (
	codeKeyNotFound       = 100
	codeNodeExist         = 105
	codeIndexNaN          = 203
	codeInvalidField      = 209
	codeRaftInternal      = 300
	codeEventIndexCleared = 401
)

var v2Errors = map[int]struct {
	status  int
	message string
}{
	codeKeyNotFound:       {http.StatusNotFound, "Key not found"},
	codeNodeExist:         {http.StatusPreconditionFailed, "Key already exists"},
	codeIndexNaN:          {http.StatusBadRequest, "The given index in POST form is not a number"},
	codeInvalidField:      {http.StatusBadRequest, "Invalid field"},
	codeRaftInternal:      {http.StatusInternalServerError, "Raft Internal Error"},
	codeEventIndexCleared: {http.StatusBadRequest, "The event in requested index is outdated and cleared"},
}

// V2Node is one node of the v2 key tree: a key with a value, or a
// directory with its children.
type V2Node struct {
	Key           string    `json:"key"`
	Dir           bool      `json:"dir,omitempty"`
	Value         *string   `json:"value,omitempty"`
	Nodes         []*V2Node `json:"nodes,omitempty"`
	ModifiedIndex int64     `json:"modifiedIndex,omitempty"`
	CreatedIndex  int64     `json:"createdIndex,omitempty"`
}

// V2Response is a successful answer: what was done, to which node.
type V2Response struct {
	Action   string  `json:"action"`
	Node     *V2Node `json:"node"`
	PrevNode *V2Node `json:"prevNode,omitempty"`
}

// V2Error is an error answer. Cause names the key; Index is the store's
// index when the error happened.
type V2Error struct {
	Code    int    `json:"errorCode"`
	Message string `json:"message"`
	Cause   string `json:"cause,omitempty"`
	Index   int64  `json:"index"`
}

func (e *V2Error) Error() string {
	return fmt.Sprintf("%d: %s (%s) [%d]", e.Code, e.Message, e.Cause, e.Index)
}

func newV2Error(code int, cause string, index int64) *V2Error {
	return &V2Error{Code: code, Message: v2Errors[code].message, Cause: cause, Index: index}
}

// indexHeader carries the store's index on every answer, as etcd v2's
// X-Etcd-Index did; a waiting member resumes after it.
const indexHeader = "X-Etcd-Index"

func writeV2(w http.ResponseWriter, status int, index int64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(indexHeader, strconv.FormatInt(index, 10))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeV2Error(w http.ResponseWriter, e *V2Error) {
	status := http.StatusInternalServerError
	if known, ok := v2Errors[e.Code]; ok {
		status = known.status
	}
	writeV2(w, status, e.Index, e)
}

func strPtr(s string) *string { return &s }
