package backend

import "golang.org/x/sys/unix"

// releaseMapped tells the kernel that the n bytes mapped at addr are not
// needed: for a shared, read-only file mapping, MADV_DONTNEED unmaps the
// pages without touching the page cache or the file, and the next access
// maps them again with the file's content.
func releaseMapped(addr uintptr, n int64) error {
	if n <= 0 {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(n), unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}
