package backend

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mappedResident is how many bytes of the database's mapping are in the
// process's resident set, from /proc/self/smaps.
func mappedResident(t *testing.T, b *Backend) int64 {
	t.Helper()
	b.mu.RLock()
	addr := uint64(b.db.Info().Data)
	b.mu.RUnlock()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mappingRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); in && ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping at %#x in smaps (%v)", addr, sc.Err())
	return 0
}

// mappingRange parses the address range that starts a mapping's entry.
func mappingRange(line string) (lo, hi uint64, ok bool) {
	r, _, found := strings.Cut(line, " ")
	l, h, dash := strings.Cut(r, "-")
	if !found || !dash {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(l, 16, 64)
	hi, err2 := strconv.ParseUint(h, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
}

// TestReleaseMapped checks that large reads leave no more of the file
// resident than about releaseAfter, that an explicit release drops it all, and
// that reads after a release still see every value.
func TestReleaseMapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("releasing mapped pages is implemented on Linux")
	}
	b := open(t, filepath.Join(t.TempDir(), "db"), time.Hour, 1<<20)
	defer b.Close()
	const n, size = 6000, 4 << 10 // 24 MiB, three times releaseAfter
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }
	if err := b.Write(func(tx WriteTx) error {
		for i := range n {
			if err := tx.Put(Key, fmt.Appendf(nil, "k%05d", i), value(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.ForceCommit()
	readAll := func(note bool) {
		t.Helper()
		for i := 0; i < n; i += 100 {
			read := 0
			b.Read(func(tx ReadTx) {
				keys := tx.Lookup(Key)
				for j := i; j < i+100; j++ {
					v := keys.Get(fmt.Appendf(nil, "k%05d", j))
					if !bytes.Equal(v, value(j)) {
						t.Fatalf("key %d: read %d bytes, not its value", j, len(v))
					}
					read += len(v)
				}
			})
			if note {
				b.NoteRead(read)
			}
		}
	}

	readAll(false)
	if got := mappedResident(t, b); got < n*size/2 {
		t.Fatalf("after a whole read, %d bytes of the mapping are resident: the test reads too little to tell", got)
	}
	b.ReleaseMapped()
	if got := mappedResident(t, b); got > 1<<20 {
		t.Fatalf("after ReleaseMapped, %d bytes of the mapping are resident", got)
	}
	readAll(true)
	// A 4 KiB value takes two pages with its header, so the pages touched
	// between releases are up to twice the bytes noted.
	if got := mappedResident(t, b); got > 2*releaseAfter+(1<<20) {
		t.Fatalf("after noted reads, %d bytes of the mapping are resident, above twice %d", got, releaseAfter)
	}
}

// TestLookup checks that Lookup.Get answers as ReadTx.Get does, for keys
// present, absent, and between or past the stored ones.
func TestLookup(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "db"), time.Hour, 100)
	defer b.Close()
	for _, k := range []string{"b", "d", "f"} {
		put(t, b, k)
	}
	b.Read(func(tx ReadTx) {
		l := tx.Lookup(Key)
		for _, k := range []string{"f", "a", "b", "c", "d", "e", "g", "b"} {
			if got, want := l.Get([]byte(k)), tx.Get(Key, []byte(k)); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Errorf("Lookup.Get(%q) = %q, ReadTx.Get = %q", k, got, want)
			}
		}
	})
}
