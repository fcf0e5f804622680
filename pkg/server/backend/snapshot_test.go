package backend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// TestWritesCommitWhileSnapshotOpen: a snapshot streaming to a slow
// client holds a read transaction for as long as it takes. bbolt cannot
// grow its memory map while a read transaction is open, so if the file
// outgrew the map meanwhile, the next commit would wait for the snapshot
// to end, and with it every write of the member. The map is reserved
// large enough up front that a growing file never needs a new one.
// A defragmented file becomes the live one and is mapped the same way.
func TestWritesCommitWhileSnapshotOpen(t *testing.T) {
	for _, defrag := range []bool{false, true} {
		t.Run(fmt.Sprintf("defragmented=%v", defrag), func(t *testing.T) { testWritesCommitWhileSnapshotOpen(t, defrag) })
	}
}

func testWritesCommitWhileSnapshotOpen(t *testing.T, defrag bool) {
	b := open(t, filepath.Join(t.TempDir(), "db"), time.Hour, 1<<30)
	defer b.Close()
	put(t, b, "before")
	b.ForceCommit()
	if defrag {
		if _, err := b.Defrag(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := b.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	want := snap.Size()

	done := make(chan error, 1)
	go func() {
		value := bytes.Repeat([]byte("v"), 64<<10)
		// 160 MiB: well past the first sizes bbolt maps.
		for i := range 2560 {
			if err := b.Write(func(tx WriteTx) error { return tx.Put(Key, []byte(fmt.Sprintf("k%05d", i)), value) }); err != nil {
				done <- err
				return
			}
			if i%256 == 255 {
				b.ForceCommit()
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("writes stalled while a snapshot was open")
	}
	if b.Size() < 160<<20 {
		t.Fatalf("the file is %d bytes after 160 MiB of writes", b.Size())
	}
	n, err := snap.WriteTo(io.Discard)
	if err != nil || n != want {
		t.Fatalf("the snapshot wrote %d bytes (%v), want its size at opening, %d", n, err, want)
	}
}
