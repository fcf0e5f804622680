package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// bbolt maps a database file into memory and trusts the page numbers it
// finds; a page past the end of a truncated file faults the process
// instead of failing a call. So before bbolt opens a file, its meta pages
// are read here and the file must reach the last page they claim.
//
// A meta page: a 16-byte page header, then magic, version, page size,
// flags (4 bytes each), the root bucket (page, sequence), the freelist
// page, the high-water page number, the transaction ID and an FNV-64a
// checksum of what precedes it (8 bytes each), in the machine's byte
// order, little-endian on every platform kvd runs on.
const (
	pageHeaderSize = 16
	metaSize       = 64
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
)

type boltMeta struct {
	pageSize    uint32
	highWater   uint64 // pages in use: the file must hold them all
	txid        uint64
	checksumsOK bool
}

func readMeta(f *os.File, off int64) (boltMeta, error) {
	b := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return boltMeta{}, err
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, errors.New("not a bbolt database page")
	}
	h := fnv.New64a()
	h.Write(m[:56])
	return boltMeta{
		pageSize:    le.Uint32(m[8:]),
		highWater:   le.Uint64(m[40:]),
		txid:        le.Uint64(m[48:]),
		checksumsOK: h.Sum64() == le.Uint64(m[56:]),
	}, nil
}

// checkPages makes sure the first size bytes of f are a database whose
// newest valid meta page refers to no page beyond them.
func checkPages(f *os.File, size int64) error {
	if size < 2*1024 {
		return fmt.Errorf("%d bytes is too short for a database", size)
	}
	m0, err0 := readMeta(f, 0)
	ps := int64(m0.pageSize)
	if err0 != nil || !m0.checksumsOK || ps < 1024 || ps > 1<<16 {
		// The first meta page is damaged: find the second at the usual
		// page sizes.
		ps = 0
		for try := int64(1024); try <= 1<<16 && try < size; try *= 2 {
			if m, err := readMeta(f, try); err == nil && m.checksumsOK && int64(m.pageSize) == try {
				ps = try
				break
			}
		}
		if ps == 0 {
			return errors.New("not a database: no valid meta page")
		}
	}
	best := boltMeta{}
	for _, off := range []int64{0, ps} {
		if m, err := readMeta(f, off); err == nil && m.checksumsOK && int64(m.pageSize) == ps && m.txid >= best.txid {
			best = m
		}
	}
	if best.pageSize == 0 {
		return errors.New("not a database: no valid meta page")
	}
	if need := int64(best.highWater) * ps; need > size {
		return fmt.Errorf("database is truncated: it uses %d pages of %d bytes (%d bytes) but only %d bytes are there", best.highWater, ps, need, size)
	}
	return nil
}
