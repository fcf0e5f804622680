package framework

import (
	"path/filepath"
	"sync"
)

// DBFile is the member's database file, where kvd and etcd both keep it
// under the data directory.
func (m *Member) DBFile() string { return filepath.Join(m.DataDir, "member", "snap", "db") }

// Repeat calls f(0), f(1), ... in a goroutine counted by wg, for load that
// runs beside a test's steps, until stop is closed or f returns false.
func Repeat(wg *sync.WaitGroup, stop <-chan struct{}, f func(i int) bool) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if !f(i) {
				return
			}
		}
	}()
}
