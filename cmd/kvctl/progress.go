package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// progressRefresh is how often the bar is redrawn, as etcdctl's.
const progressRefresh = 200 * time.Millisecond

// progressBar draws etcdctl's progress line on a terminal,
//
//	4000 / 10000 [--------->______________] 40.00% 3891 p/s
//
// redrawn in place until Finish leaves it complete on its own line. Off a
// terminal it draws nothing. It is safe for concurrent Add.
type progressBar struct {
	out   io.Writer
	width int // the terminal's columns
	total int64
	cur   atomic.Int64
	start time.Time

	stop     chan struct{}
	done     chan struct{}
	finished sync.Once
}

// startProgress starts a bar counting to total on g's stderr, or returns
// nil when stderr is not a terminal; a nil bar ignores every call.
func startProgress(g *globals, total int) *progressBar {
	f, ok := g.stderr.(*os.File)
	if !ok {
		return nil
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return nil // not a terminal
	}
	width := int(ws.Col)
	if width == 0 {
		width = 100
	}
	b := &progressBar{out: f, width: width, total: int64(total), start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *progressBar) Add(n int) {
	if b != nil {
		b.cur.Add(int64(n))
	}
}

// Set moves the bar to n.
func (b *progressBar) Set(n int) {
	if b != nil {
		b.cur.Store(int64(n))
	}
}

// Finish draws the bar a last time and ends its line.
func (b *progressBar) Finish() {
	if b == nil {
		return
	}
	b.finished.Do(func() {
		close(b.stop)
		<-b.done
	})
}

func (b *progressBar) run() {
	defer close(b.done)
	t := time.NewTicker(progressRefresh)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			fmt.Fprint(b.out, "\r"+b.render(true, time.Now())+"\n")
			return
		case now := <-t.C:
			fmt.Fprint(b.out, "\r"+b.render(false, now))
		}
	}
}

// render lays out counters, bar, percentage and speed over the width.
func (b *progressBar) render(finished bool, now time.Time) string {
	cur := b.cur.Load()
	counters := fmt.Sprintf("%d / %d", cur, b.total)
	percent := fmt.Sprintf("%.02f%%", float64(cur)/(float64(b.total)/100))
	speed := "? p/s"
	if secs := now.Sub(b.start).Seconds(); cur > 0 && secs > 0 {
		speed = fmt.Sprintf("%.0f p/s", float64(cur)/secs)
	}
	barWidth := b.width - len(counters) - len(percent) - len(speed) - 3
	line := counters + " " + drawBar(cur, b.total, barWidth, finished) + " " + percent + " " + speed
	if pad := b.width - len(line); pad > 0 {
		line += strings.Repeat(" ", pad)
	}
	return line
}

// drawBar is [--->___] in width cells: done cells, the head, and the rest.
func drawBar(cur, total int64, width int, finished bool) string {
	if width < 3 {
		width = 30
	}
	inner := width - 2
	cur = min(cur, total)
	filled := 0
	if total > 0 {
		filled = int(math.Ceil(float64(cur) / float64(total) * float64(inner)))
	}
	var s strings.Builder
	s.WriteByte('[')
	switch {
	case finished && cur == total:
		s.WriteString(strings.Repeat("-", filled))
	case filled > 1:
		s.WriteString(strings.Repeat("-", filled-1) + ">")
	case filled == 1:
		s.WriteString(">")
	}
	s.WriteString(strings.Repeat("_", inner-filled))
	s.WriteByte(']')
	return s.String()
}

// progressWriter moves a bar by the bytes written through it.
type progressWriter struct{ b *progressBar }

func (w progressWriter) Write(p []byte) (int, error) {
	w.b.Add(len(p))
	return len(p), nil
}
