package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ANSI colours, as zerolog's ConsoleWriter uses them.
const (
	colorRed      = 31
	colorGreen    = 32
	colorYellow   = 33
	colorBlue     = 34
	colorCyan     = 36
	colorBold     = 1
	colorDarkGray = 90
)

// consoleLevels are zerolog's short level names and their colours.
var consoleLevels = map[string]struct {
	short string
	color int
}{
	"trace": {"TRC", colorBlue}, "debug": {"DBG", 0}, "info": {"INF", colorGreen}, "warn": {"WRN", colorYellow},
	"error": {"ERR", colorRed}, "fatal": {"FTL", colorRed}, "panic": {"PNC", colorRed},
}

// consoleLine turns one JSON line into what zerolog's ConsoleWriter (with
// its defaults) prints for it: "3:04PM INF message key=value ...", the time
// in the local zone, the fields sorted with "error" first.
func consoleLine(line []byte) ([]byte, error) {
	var evt map[string]any
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&evt); err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	var b bytes.Buffer
	part := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	part(consoleTime(evt["time"]))
	level, _ := evt["level"].(string)
	part(consoleLevel(level))
	if c, _ := evt["caller"].(string); c != "" {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, c); err == nil {
				c = rel
			}
		}
		part(colorize(c, colorBold) + colorize(" >", colorCyan))
	}
	if m, _ := evt["message"].(string); m != "" {
		switch level {
		case "info", "warn", "error", "fatal", "panic":
			part(colorize(m, colorBold))
		default:
			part(m)
		}
	}
	writeConsoleFields(&b, evt)
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func consoleTime(v any) string {
	s, ok := v.(string)
	if !ok {
		return colorize("<nil>", colorDarkGray)
	}
	if t, err := time.ParseInLocation(time.RFC3339, s, time.Local); err == nil {
		s = t.In(time.Local).Format(time.Kitchen)
	}
	return colorize(s, colorDarkGray)
}

func consoleLevel(level string) string {
	if l, ok := consoleLevels[level]; ok {
		return colorize(l.short, l.color)
	}
	if level == "" {
		return "???"
	}
	return strings.ToUpper(level[:min(3, len(level))])
}

func writeConsoleFields(b *bytes.Buffer, evt map[string]any) {
	var fields []string
	hasErr := false
	for k := range evt {
		switch k {
		case "level", "time", "message", "caller":
		case "error":
			hasErr = true
		default:
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	if hasErr {
		fields = append([]string{"error"}, fields...)
	}
	if b.Len() > 0 && len(fields) > 0 {
		b.WriteByte(' ')
	}
	for i, k := range fields {
		b.WriteString(colorize(k+"=", colorCyan))
		value := func(s string) string { return s }
		if k == "error" {
			value = func(s string) string { return colorize(colorize(s, colorBold), colorRed) }
		}
		switch v := evt[k].(type) {
		case string:
			if needsQuote(v) {
				v = strconv.Quote(v)
			}
			b.WriteString(value(v))
		case json.Number:
			b.WriteString(value(v.String()))
		default:
			out, err := json.Marshal(v)
			if err != nil {
				fmt.Fprintf(b, colorize("[error: %v]", colorRed), err)
			} else {
				b.WriteString(value(string(out)))
			}
		}
		if i < len(fields)-1 {
			b.WriteByte(' ')
		}
	}
}

// needsQuote is zerolog's: control characters, non-ASCII, space, \ and ".
func needsQuote(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == ' ' || s[i] == '\\' || s[i] == '"' {
			return true
		}
	}
	return false
}

// colorize wraps s in an ANSI colour unless NO_COLOR is set or c is 0.
func colorize(s string, c int) string {
	if c == 0 || os.Getenv("NO_COLOR") != "" {
		return s
	}
	return fmt.Sprintf("\x1b[%dm%s\x1b[0m", c, s)
}
