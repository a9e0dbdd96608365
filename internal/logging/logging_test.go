package logging

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The expected lines below are what zerolog v1.34.0 (the original's
// logger) wrote for the same calls, compared byte for byte once against
// zerolog itself: log.Logger.With().Str("uid","u1").Int("n",3) and then
// Info().Str(...).Bool(...).Float64(...).Dur(...).Err(...).Strs(...).Interface(...).Msg(...).
var at = time.Date(2026, 12, 1, 17, 16, 31, 0, time.UTC)

type pair struct {
	A int    `json:"a"`
	B string `json:"b"`
}

func logAll(h slog.Handler) {
	l := slog.New(h).With("uid", "u1", "n", 3)
	emit := func(level slog.Level, msg string, args ...any) {
		if !l.Handler().Enabled(context.Background(), level) {
			return
		}
		r := slog.NewRecord(at, level, msg, 0)
		r.Add(args...)
		_ = l.Handler().Handle(context.Background(), r)
	}
	emit(slog.LevelInfo, "pod reviewed", "image", "docker.io/library/nginx:1 <x>&\"q\"\n\x01\x7f é", "ok", true,
		"f", 0.0000001, "d", 1500*time.Microsecond, "error", errors.New("boom"), "regs", []string{"a", "b"}, "s", pair{1, "x"})
	emit(slog.LevelDebug, "debug line")
	emit(slog.LevelWarn, "", "k", "v v")
	emit(levelTrace, "t")
}

func TestJSONIsZerologs(t *testing.T) {
	var b bytes.Buffer
	logAll(newHandler(&b, handlerOptions{Level: levelTrace}))
	want := `{"level":"info","uid":"u1","n":3,"image":"docker.io/library/nginx:1 <x>&\"q\"\n\u0001\u007f é","ok":true,"f":1e-7,"d":1.5,"error":"boom","regs":["a","b"],"s":{"a":1,"b":"x"},"time":"2026-12-01T17:16:31Z","message":"pod reviewed"}
{"level":"debug","uid":"u1","n":3,"time":"2026-12-01T17:16:31Z","message":"debug line"}
{"level":"warn","uid":"u1","n":3,"k":"v v","time":"2026-12-01T17:16:31Z"}
{"level":"trace","uid":"u1","n":3,"time":"2026-12-01T17:16:31Z","message":"t"}
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestConsoleIsZerologs(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	kitchen := at.In(time.Local).Format(time.Kitchen)
	var b bytes.Buffer
	logAll(newHandler(&b, handlerOptions{Level: levelTrace, Console: true}))
	want := "\x1b[90mK\x1b[0m \x1b[32mINF\x1b[0m \x1b[1mpod reviewed\x1b[0m \x1b[36merror=\x1b[0m\x1b[31m\x1b[1mboom\x1b[0m\x1b[0m " +
		"\x1b[36md=\x1b[0m1.5 \x1b[36mf=\x1b[0m1e-7 \x1b[36mimage=\x1b[0m\"docker.io/library/nginx:1 <x>&\\\"q\\\"\\n\\x01\\x7f é\" " +
		"\x1b[36mn=\x1b[0m3 \x1b[36mok=\x1b[0mtrue \x1b[36mregs=\x1b[0m[\"a\",\"b\"] \x1b[36ms=\x1b[0m{\"a\":1,\"b\":\"x\"} \x1b[36muid=\x1b[0mu1\n" +
		"\x1b[90mK\x1b[0m DBG debug line \x1b[36mn=\x1b[0m3 \x1b[36muid=\x1b[0mu1\n" +
		"\x1b[90mK\x1b[0m \x1b[33mWRN\x1b[0m \x1b[36mk=\x1b[0m\"v v\" \x1b[36mn=\x1b[0m3 \x1b[36muid=\x1b[0mu1\n" +
		"\x1b[90mK\x1b[0m \x1b[34mTRC\x1b[0m t \x1b[36mn=\x1b[0m3 \x1b[36muid=\x1b[0mu1\n"
	want = strings.ReplaceAll(want, "K", kitchen)
	if got := b.String(); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}

	t.Setenv("NO_COLOR", "1")
	b.Reset()
	logAll(newHandler(&b, handlerOptions{Level: slog.LevelWarn, Console: true}))
	if got, want := b.String(), kitchen+" WRN k=\"v v\" n=3 uid=u1\n"; got != want {
		t.Errorf("NO_COLOR: got %q, want %q", got, want)
	}
}

func TestLevels(t *testing.T) {
	for name, want := range map[string]slog.Level{
		"trace": levelTrace, "DEBUG": slog.LevelDebug, "Info": slog.LevelInfo, "warn": slog.LevelWarn,
		"error": slog.LevelError, "fatal": levelFatal, "panic": levelPanic, "disabled": levelDisabled,
		"-1": levelTrace, "5": levelPanic,
	} {
		if got, ok := ParseLevel(name); !ok || got != want {
			t.Errorf("ParseLevel(%q) = %v %v, want %v", name, got, ok, want)
		}
	}
	for _, bad := range []string{"verbose", "warning", "6", ""} {
		if got, ok := ParseLevel(bad); ok || got != slog.LevelInfo {
			t.Errorf("ParseLevel(%q) = %v %v, want info and not ok", bad, got, ok)
		}
	}
	// panic logs only panics: a warning is dropped; disabled drops all.
	var b bytes.Buffer
	l := New(&b, "panic", "json")
	l.Warn("dropped")
	l.Log(context.Background(), levelPanic, "kept")
	New(&b, "disabled", "json").Log(context.Background(), levelPanic, "dropped")
	if got := b.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, `{"level":"panic","time":`) {
		t.Errorf("panic level: %q", got)
	}
}

// At trace the caller is named after the time, as zerolog's Caller() does.
func TestTraceCaller(t *testing.T) {
	var b bytes.Buffer
	New(&b, "trace", "json").Info("x")
	if got := b.String(); !strings.Contains(got, `","caller":"`) || !strings.Contains(got, "logging_test.go:") ||
		strings.Index(got, `"time"`) > strings.Index(got, `"caller"`) {
		t.Errorf("trace line: %s", got)
	}
	b.Reset()
	New(&b, "debug", "json").Info("x")
	if strings.Contains(b.String(), "caller") {
		t.Errorf("caller below trace: %s", b.String())
	}
}

func TestGroups(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(newHandler(&b, handlerOptions{})).WithGroup("req").With("id", 1)
	l.Info("m", slog.Group("containers.app", "image", "nginx"), slog.Group("empty"))
	want := `{"level":"info","req":{"id":1,"containers.app":{"image":"nginx"}},"time":"`
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("got %s, want prefix %s", b.String(), want)
	}
}
