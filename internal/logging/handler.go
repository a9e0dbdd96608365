package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// handlerOptions configure a handler.
type handlerOptions struct {
	Level slog.Leveler
	// Console writes zerolog's console format instead of its JSON.
	Console bool
	// Caller adds the caller's file:line ("caller"), as zerolog's Caller().
	Caller bool
}

// handler is a slog.Handler writing what zerolog writes: one JSON object a
// line with "level" first, then the fields in the order they were added,
// then "time" (RFC 3339) and "message"; or that object in zerolog's
// console format.
type handler struct {
	w      io.Writer
	mu     *sync.Mutex
	opts   handlerOptions
	fields []byte // the fields of With, encoded, each with a leading comma
	open   int    // groups of WithGroup opened in fields
}

// newHandler returns a handler writing to w.
func newHandler(w io.Writer, o handlerOptions) *handler {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	return &handler{w: w, mu: &sync.Mutex{}, opts: o}
}

// Enabled implements slog.Handler.
func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opts.Level.Level() && h.opts.Level.Level() < levelDisabled
}

// WithAttrs implements slog.Handler.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	c.fields = appendAttrs(append([]byte(nil), h.fields...), attrs)
	return &c
}

// WithGroup implements slog.Handler: later fields nest under name.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.fields = append(appendKey(append([]byte(nil), h.fields...), name), '{')
	c.open++
	return &c
}

// Handle implements slog.Handler.
func (h *handler) Handle(_ context.Context, r slog.Record) error {
	buf := make([]byte, 0, 256)
	buf = append(buf, `{"level":`...)
	buf = appendString(buf, levelName(r.Level))
	buf = append(buf, h.fields...)
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	buf = appendAttrs(buf, attrs)
	for range h.open {
		buf = append(buf, '}')
	}
	if !r.Time.IsZero() {
		buf = appendString(appendKey(buf, "time"), r.Time.Format(time.RFC3339))
	}
	if h.opts.Caller && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		buf = appendString(appendKey(buf, "caller"), f.File+":"+strconv.Itoa(f.Line))
	}
	if r.Message != "" {
		buf = appendString(appendKey(buf, "message"), r.Message)
	}
	buf = append(buf, '}', '\n')
	if h.opts.Console {
		var err error
		if buf, err = consoleLine(buf); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf)
	return err
}

// levelName is zerolog's name of l.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	case l < levelFatal:
		return "error"
	case l < levelPanic:
		return "fatal"
	default:
		return "panic"
	}
}

// appendKey writes `,"key":`, without the comma right after an opening brace.
func appendKey(buf []byte, key string) []byte {
	if len(buf) == 0 || buf[len(buf)-1] != '{' {
		buf = append(buf, ',')
	}
	return append(appendString(buf, key), ':')
}

func appendAttrs(buf []byte, attrs []slog.Attr) []byte {
	for _, a := range attrs {
		buf = appendAttr(buf, a)
	}
	return buf
}

func appendAttr(buf []byte, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if v.Kind() == slog.KindGroup {
		group := v.Group()
		if len(group) == 0 {
			return buf
		}
		if a.Key == "" { // inlined, as slog's own handlers do
			return appendAttrs(buf, group)
		}
		return append(appendAttrs(append(appendKey(buf, a.Key), '{'), group), '}')
	}
	return appendValue(appendKey(buf, a.Key), v)
}

// appendValue encodes v as zerolog's typed fields would: durations in
// milliseconds, times in RFC 3339, errors and Stringers as strings.
func appendValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(buf, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		return appendFloat(buf, v.Float64())
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		return appendFloat(buf, float64(v.Duration())/float64(time.Millisecond))
	case slog.KindTime:
		return appendString(buf, v.Time().Format(time.RFC3339))
	}
	switch x := v.Any().(type) {
	case nil:
		return append(buf, "null"...)
	case error:
		return appendString(buf, x.Error())
	case json.Marshaler:
		return appendJSON(buf, x)
	case fmt.Stringer:
		return appendString(buf, x.String())
	case []string:
		buf = append(buf, '[')
		for i, s := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, s)
		}
		return append(buf, ']')
	default:
		return appendJSON(buf, x)
	}
}

// appendJSON is zerolog's Interface: encoding/json, or the error as a string.
func appendJSON(buf []byte, x any) []byte {
	b, err := json.Marshal(x)
	if err != nil {
		return appendString(buf, fmt.Sprintf("marshaling error: %v", err))
	}
	return append(buf, b...)
}

// appendFloat writes a number as zerolog does: JSON has no NaN or
// infinities, so those are strings.
func appendFloat(buf []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(buf, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(buf, `"-Inf"`...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7, as ES6 and zerolog write it.
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf
}

const hexDigits = "0123456789abcdef"

// appendString writes a JSON string the way zerolog does: quotes,
// backslashes and control characters escaped, invalid UTF-8 as U+FFFD,
// everything else (including <, > and &) as is.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, `\ufffd`...)
			} else {
				buf = append(buf, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case b == '"' || b == '\\':
			buf = append(buf, '\\', b)
		case b == '\b':
			buf = append(buf, '\\', 'b')
		case b == '\f':
			buf = append(buf, '\\', 'f')
		case b == '\n':
			buf = append(buf, '\\', 'n')
		case b == '\r':
			buf = append(buf, '\\', 'r')
		case b == '\t':
			buf = append(buf, '\\', 't')
		case b < 0x20 || b == 0x7f:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		default:
			buf = append(buf, b)
		}
		i++
	}
	return append(buf, '"')
}
