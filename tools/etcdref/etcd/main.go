// Command etcd is the reference etcd server, built from its Go module at the
// version pinned in go.mod, used only by interop tests and benchmarks.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
