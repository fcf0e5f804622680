package framework

import "testing"

// A port one test process picked is refused to every other: the lock is
// held on an open file, so a second open of the same file, as another
// process would make, cannot take it.
func TestPickPortReservesAcrossProcesses(t *testing.T) {
	port := PickPort(t)
	if reservePort(t, port) {
		t.Fatalf("port %d, picked, could be reserved again", port)
	}
	if other := PickPort(t); other == port {
		t.Fatalf("port %d handed out twice", port)
	}
}
