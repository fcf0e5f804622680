package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record on disk is: length (4 bytes, of type and data), CRC32C of
// length, type and data (4 bytes), type (1 byte), data. Preallocated space
// is zero, and a zero length marks the end of the written part.
const headerLen = 8

// Record types.
const (
	typeMetadata  byte = 1
	typeEntry     byte = 2
	typeHardState byte = 3
	typeSnapshot  byte = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by errors for damage that cannot be a torn write.
var ErrCorrupt = errors.New("wal: corrupt record")

func appendRecord(buf []byte, typ byte, data []byte) []byte {
	buf, start := beginRecord(buf, typ)
	return sealRecord(append(buf, data...), start)
}

// beginRecord appends a record's header, to be filled in by sealRecord
// once the record's data follows it, and its type. start is where the
// record begins.
func beginRecord(buf []byte, typ byte) (_ []byte, start int) {
	start = len(buf)
	buf = append(buf, make([]byte, headerLen)...)
	return append(buf, typ), start
}

// sealRecord writes the length and CRC of the record from start to the
// end of buf into its header.
func sealRecord(buf []byte, start int) []byte {
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-headerLen))
	crc := crc32.Update(0, crcTable, buf[start:start+4])
	crc = crc32.Update(crc, crcTable, buf[start+headerLen:])
	binary.BigEndian.PutUint32(buf[start+4:], crc)
	return buf
}

type record struct {
	typ  byte
	data []byte
}

// errTorn means the record at an offset is incomplete or fails its CRC;
// whether that is a torn tail or corruption depends on what follows.
var errTorn = errors.New("wal: torn record")

// decodeRecord reads the record at off in b. end reports the zero-filled
// end of the written part.
func decodeRecord(b []byte, off int) (r record, next int, end bool, err error) {
	if off+headerLen > len(b) {
		return r, off, true, nil
	}
	n := int(binary.BigEndian.Uint32(b[off:]))
	if n == 0 {
		return r, off, true, nil
	}
	if off+headerLen+n > len(b) || n > len(b) {
		return r, off, false, errTorn
	}
	crc := crc32.Update(0, crcTable, b[off:off+4])
	crc = crc32.Update(crc, crcTable, b[off+headerLen:off+headerLen+n])
	if crc != binary.BigEndian.Uint32(b[off+4:]) {
		return r, off, false, errTorn
	}
	body := b[off+headerLen : off+headerLen+n]
	return record{typ: body[0], data: body[1:]}, off + headerLen + n, false, nil
}

// onlyZeros reports whether b holds nothing but zero bytes.
func onlyZeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tornExtent is where a damaged record at off would end if its length
// field is to be believed, bounded by the file.
func tornExtent(b []byte, off int) int {
	if off+headerLen > len(b) {
		return len(b)
	}
	n := int(binary.BigEndian.Uint32(b[off:]))
	return min(len(b), off+headerLen+n)
}

func encodeSnapshot(s Snapshot) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, s.Index)
	binary.BigEndian.PutUint64(b[8:], s.Term)
	return b
}

func decodeSnapshot(b []byte) (Snapshot, error) {
	if len(b) != 16 {
		return Snapshot{}, fmt.Errorf("%w: snapshot record of %d bytes", ErrCorrupt, len(b))
	}
	return Snapshot{Index: binary.BigEndian.Uint64(b), Term: binary.BigEndian.Uint64(b[8:])}, nil
}
