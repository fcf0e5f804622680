// Command etcd is etcd v3.5, the last release with the v2 discovery
// client (--discovery URL), built from its Go module so that tests can
// bootstrap a real etcd cluster from kvd's discovery service.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
