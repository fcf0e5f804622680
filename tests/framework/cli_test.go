package framework

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"etcdctl version: 3.7.3\nAPI version: 3.7\n", "CLI version: X\nAPI version: 3.7\n"},
		{"kvctl version: 0.1.0\n", "CLI version: X\n"},
		{"ep is healthy: successfully committed proposal: took = 13.1ms\n", "ep is healthy: successfully committed proposal: took = DURATION\n"},
		{`{"level":"warn","ts":"x","msg":"retrying"}` + "\nError: context deadline exceeded\n", "Error: context deadline exceeded\n"},
		{"Run 'etcdctl --help' for usage.\n", "Run 'CLI --help' for usage.\n"},
		{"took 1m2.5s and 250µs\n", "took DURATION and DURATION\n"},
		{"/key1s stays\n", "/key1s stays\n"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	status := "│ 127.0.0.1:2379 │ 8e9e05c52164694d │   3.7.3 │   20 kB │\n"
	if got, want := NormalizeStatus(status), "│ N.N.N.N:N │ 8e9e05c52164694d │ N │ N │\n"; got != want {
		t.Errorf("NormalizeStatus = %q, want %q", got, want)
	}
}
