// Command etcdctl is the reference etcdctl, built from its Go module at the
// version pinned in go.mod, used only by interop tests and benchmarks.
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
