package e2e

// opsBehaviours are the operations commands of issue 11. The core list
// compacted to 5, then 7: HashKV at those revisions is the hash each
// compaction made, even where a later one made the revision unreadable.
var opsBehaviours = []step{
	cmd("compaction", "0"),
	{args: []string{"endpoint", "hashkv", "-w", "json"}, mask: maskStatus},
	{args: []string{"endpoint", "hashkv"}, mask: maskStatus},
	{args: []string{"endpoint", "hashkv", "--rev", "5", "-w", "json"}, mask: maskStatus},
	{args: []string{"endpoint", "hashkv", "--rev", "6"}, mask: maskStatus},
	{args: []string{"endpoint", "hashkv", "--rev", "7", "-w", "json"}, mask: maskStatus},
	{args: []string{"endpoint", "hashkv", "--rev", "100000"}, mask: maskStatus},
}
