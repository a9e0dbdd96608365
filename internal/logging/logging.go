// Package logging builds the process's slog logger from logLevel and
// logFormat. Its output has the shapes of the original k8s-image-swapper,
// which logged with zerolog: JSON with the keys level (lower case), time and
// message for "json", and zerolog's console format for "console", so log
// queries and dashboards built on the original keep working.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// Levels beyond slog's four, as zerolog's trace, fatal and panic.
const (
	levelTrace = slog.LevelDebug - 4
	levelFatal = slog.LevelError + 4
	levelPanic = slog.LevelError + 8
	// levelDisabled logs nothing (zerolog's "disabled").
	levelDisabled = slog.Level(1 << 20)
)

// levelNames are the names logLevel takes, as zerolog parses them.
var levelNames = map[string]slog.Level{
	"trace": levelTrace, "debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn,
	"error": slog.LevelError, "fatal": levelFatal, "panic": levelPanic, "disabled": levelDisabled,
}

// zerologLevels are zerolog's numeric levels (-1 trace to 5 panic, 7 disabled).
var zerologLevels = map[int]slog.Level{
	-1: levelTrace, 0: slog.LevelDebug, 1: slog.LevelInfo, 2: slog.LevelWarn,
	3: slog.LevelError, 4: levelFatal, 5: levelPanic, 7: levelDisabled,
}

// LevelNames lists the names ParseLevel knows, most verbose first.
func LevelNames() []string {
	return []string{"trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled"}
}

// ParseLevel reads a logLevel as the original's zerolog did: the names in
// any case, or zerolog's numbers. ok is false for anything else.
func ParseLevel(name string) (slog.Level, bool) {
	if l, ok := levelNames[strings.ToLower(strings.TrimSpace(name))]; ok {
		return l, true
	}
	if n, err := strconv.Atoi(strings.TrimSpace(name)); err == nil {
		l, ok := zerologLevels[n]
		return l, ok
	}
	return slog.LevelInfo, false
}

// levelOf maps a logLevel; unknown names are info, as in the original.
func levelOf(name string) slog.Level {
	l, _ := ParseLevel(name)
	return l
}

// Format is logFormat.
type Format string

const (
	// JSON is zerolog's JSON lines (the default).
	JSON Format = "json"
	// Console is zerolog's console format.
	Console Format = "console"
)

// ParseFormat reads a logFormat; "" is json. An unknown value is an error,
// and json, which the original used for it.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", JSON:
		return JSON, nil
	case Console:
		return Console, nil
	}
	return JSON, fmt.Errorf("invalid value %q, must be one of: %s, %s", s, JSON, Console)
}

// New returns a logger writing to w: zerolog's JSON for any format but
// console, which gets zerolog's console format (coloured unless the
// NO_COLOR environment variable is set, as zerolog does). At trace level
// every line names its caller, as the original's did.
func New(w io.Writer, level string, format Format) *slog.Logger {
	l := levelOf(level)
	return slog.New(newHandler(w, handlerOptions{Level: l, Console: format == Console, Caller: l <= levelTrace}))
}
