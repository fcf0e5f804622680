// Package version holds the versions kvd reports: its own release, and the
// etcd API version it implements, which etcd clients check before they use
// newer RPCs.
package version

const (
	// Version is kvd's own release.
	Version = "0.1.0"
	// APIVersion is the etcd v3 API level kvd implements.
	APIVersion = "3.7"
	// EtcdVersion is the etcd server version kvd answers as, in Status and
	// /version, so clients that compare versions treat it as an etcd 3.7.
	EtcdVersion = "3.7.0"
	// ClusterVersion is the cluster version reported in /version.
	ClusterVersion = "3.7.0"
)
