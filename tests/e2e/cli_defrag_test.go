package e2e

import "regexp"

// defragBehaviours defragment the member with and without --cluster, in
// every output format (defrag prints the same lines whatever -w says), and
// as a user who may not (only root may once auth is on). Auth is off again
// at the end, as the list found it.
var defragBehaviours = []step{
	{args: []string{"defrag"}, mask: maskDefragTook},
	{args: []string{"defrag", "--cluster"}, mask: maskDefragTook},
	{args: []string{"defrag", "-w", "json"}, mask: maskDefragTook},
	cmd("auth", "enable"),
	{args: []string{"defrag", "--user=testuser:pw"}, mask: maskDefragTook},
	{args: []string{"defrag"}, mask: maskDefragTook},
	{args: []string{"defrag", "--cluster", "--user=root:123456"}, mask: maskDefragTook},
	cmd("--user=root:123456", "auth", "disable"),
}

var defragTookRe = regexp.MustCompile(`took [0-9.]+[µmn]?s`)

// maskDefragTook hides how long each defrag took.
func maskDefragTook(s string) string { return defragTookRe.ReplaceAllString(s, "took X") }
