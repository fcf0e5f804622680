package main

import (
	"fmt"
	"strconv"
	"strings"
)

// etcdFeatureGates are the gates etcd v3.7.3 knows. kvd accepts them all
// so an etcd command line works unchanged, and acts on those it
// implements (see applyFeatureGates); the others change nothing here.
var etcdFeatureGates = []string{
	"CompactHashCheck", "FastLeaseKeepAlive", "InitialCorruptCheck", "LeaseCheckpoint",
	"LeaseCheckpointPersist", "PriorityRequest", "SetMemberLocalAddr", "StopGRPCServiceOnDefrag",
	"TxnModeWriteWithSharedBuffer",
}

// parseFeatureGates reads --feature-gates, "Name=true,Other=false", as
// etcd does: an unknown name or a value that is not a boolean is an error.
func parseFeatureGates(s string) (map[string]bool, error) {
	gates := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--feature-gates: missing bool value for %s", kv)
		}
		name = strings.TrimSpace(name)
		if !knownGate(name) {
			return nil, fmt.Errorf("--feature-gates: unrecognized feature gate: %s", name)
		}
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("--feature-gates: invalid value of %s=%s, err: %v", name, val, err)
		}
		gates[name] = b
	}
	return gates, nil
}

func knownGate(name string) bool {
	for _, g := range etcdFeatureGates {
		if g == name {
			return true
		}
	}
	return false
}
