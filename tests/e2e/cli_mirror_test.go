package e2e

import "time"

// mirrorBehaviours are make-mirror's argument errors, and a mirror of a
// prefix into another prefix of the same cluster: the copy's revisions
// (one put per key, in key order) must be etcdctl's.
var mirrorBehaviours = []step{
	cmd("make-mirror"),
	cmd("make-mirror", "one", "two"),
	cmd("make-mirror", "--dest-prefix", "/x/", "--no-dest-prefix", "{{ENDPOINT}}"),
	cmd("put", "/mm/b", "2"),
	cmd("put", "/mm/a", "1"),
	cmd("put", "/mmx", "outside"),
	{args: []string{"make-mirror", "--prefix", "/mm/", "--dest-prefix", "/mmcopy/", "{{ENDPOINT}}"}, interruptAfter: 2 * time.Second},
	cmd("get", "--prefix", "/mmcopy/", "-w", "json"),
	{args: []string{"make-mirror", "--prefix", "/mm/", "--no-dest-prefix", "--rev", "1000", "{{ENDPOINT}}"}, interruptAfter: 2 * time.Second},
}
