package main

import (
	"os"
	"testing"
)

func TestMinMax(t *testing.T) {
	tests := []struct {
		name   string
		ns     []int64
		lo, hi int64
	}{
		{"none", nil, 0, 0},
		{"one", []int64{7}, 7, 7},
		{"all equal", []int64{5, 5, 5}, 5, 5},
		{"first is neither", []int64{4, 9, 1, 6}, 1, 9},
		{"zero among them", []int64{3, 0, 2}, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if lo, hi := minMax(tt.ns); lo != tt.lo || hi != tt.hi {
				t.Fatalf("minMax(%v) = %d, %d; want %d, %d", tt.ns, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}

// sumStatus reads real /proc files: this process's own, once and twice.
func TestSumStatusAddsUpProcesses(t *testing.T) {
	me := os.Getpid()
	for _, field := range []string{"RssAnon", "VmRSS", "VmHWM"} {
		one, err := sumStatus([]int{me}, field)
		if err != nil {
			t.Fatal(err)
		}
		if one <= 0 || one%1024 != 0 {
			t.Errorf("%s of this process: %d bytes, want a positive count of KiB", field, one)
		}
		two, err := sumStatus([]int{me, me}, field)
		if err != nil {
			t.Fatal(err)
		}
		// Memory may move between the reads; the sum stays near twice one.
		if two < one*3/2 || two > one*5/2 {
			t.Errorf("%s of this process counted twice: %d bytes, want about 2 x %d", field, two, one)
		}
	}
	if _, err := sumStatus([]int{me}, "NoSuchField"); err == nil {
		t.Error("sumStatus of a missing field: no error")
	}
}
