package framework

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// PickPort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that no other test process will pick while this one runs.
//
// It is drawn below the kernel's ephemeral range (32768 and up on Linux),
// where the ports of outgoing connections and of listeners on port 0 come
// from: a port taken from there could be handed to some connection of a
// test running in parallel before the member binds it.
//
// go test runs the test binaries of several packages at once. A member
// killed and restarted leaves its port free in between, and another
// binary picking that very port would get its own server there: the
// restarted member could not bind, and the test would talk to a stranger
// that answers /health just as well. So each port picked is reserved for
// the life of the process with a lock on a file named after it, which
// the kernel drops when the process ends, however it ends.
func PickPort(t testing.TB) int {
	t.Helper()
	pickMu.Lock()
	defer pickMu.Unlock()
	for range 1000 {
		port := minPickPort + rand.IntN(maxPickPort-minPickPort)
		// A port this process holds is refused like any other's: the
		// lock belongs to the open file, not to the process.
		if !reservePort(t, port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use by something else: keep it reserved, unused
		}
		l.Close()
		return port
	}
	t.Fatal("no free port found")
	return 0
}

const minPickPort, maxPickPort = 15000, 32000

// DeadEndpoint is a 127.0.0.1 address where nothing listens, for tests
// of clients facing a member that is down.
func DeadEndpoint(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", PickPort(t))
}

var (
	pickMu   sync.Mutex
	reserved []*os.File // the lock files, held open until the process exits
)

// reservePort takes the cross-process lock on port, reporting false when
// another test process holds it.
func reservePort(t testing.TB, port int) bool {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "kvd-test-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("port reservations: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", port)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("port reservations: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reserved = append(reserved, f)
	return true
}
