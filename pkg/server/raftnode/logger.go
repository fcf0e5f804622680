package raftnode

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// raftLogger adapts slog to the logger interface go.etcd.io/raft expects.
// raft logs elections and leader changes at Info; we keep those, since an
// operator wants to see them, and let the handler's level do the filtering.
type raftLogger struct{ lg *slog.Logger }

func (l raftLogger) log(level slog.Level, msg string) {
	l.lg.Log(context.Background(), level, msg)
}

func (l raftLogger) Debug(v ...any)              { l.log(slog.LevelDebug, fmt.Sprint(v...)) }
func (l raftLogger) Debugf(f string, v ...any)   { l.log(slog.LevelDebug, fmt.Sprintf(f, v...)) }
func (l raftLogger) Info(v ...any)               { l.log(slog.LevelInfo, fmt.Sprint(v...)) }
func (l raftLogger) Infof(f string, v ...any)    { l.log(slog.LevelInfo, fmt.Sprintf(f, v...)) }
func (l raftLogger) Warning(v ...any)            { l.log(slog.LevelWarn, fmt.Sprint(v...)) }
func (l raftLogger) Warningf(f string, v ...any) { l.log(slog.LevelWarn, fmt.Sprintf(f, v...)) }
func (l raftLogger) Error(v ...any)              { l.log(slog.LevelError, fmt.Sprint(v...)) }
func (l raftLogger) Errorf(f string, v ...any)   { l.log(slog.LevelError, fmt.Sprintf(f, v...)) }
func (l raftLogger) Fatal(v ...any)              { l.fatal(fmt.Sprint(v...)) }
func (l raftLogger) Fatalf(f string, v ...any)   { l.fatal(fmt.Sprintf(f, v...)) }
func (l raftLogger) Panic(v ...any)              { l.panic(fmt.Sprint(v...)) }
func (l raftLogger) Panicf(f string, v ...any)   { l.panic(fmt.Sprintf(f, v...)) }
func (l raftLogger) fatal(msg string)            { l.log(slog.LevelError, msg); os.Exit(1) }
func (l raftLogger) panic(msg string)            { l.log(slog.LevelError, msg); panic(msg) }
