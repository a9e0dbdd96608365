package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input gives a config or a config error, never a panic, and
// every problem names a key or says what was wrong.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("target: {type: generic, generic: {registry: a.b:5000/x}}"))
	f.Add([]byte("source: {filters: [{jmespath: '`true`'}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, Options{})
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			for _, p := range ce.Problems {
				if p.Msg == "" {
					t.Fatalf("problem without message: %+v", p)
				}
			}
			return
		}
		if c.Target.Type == "" || c.ImageSwapPolicy == "" {
			t.Fatalf("valid config without defaults: %+v", c)
		}
	})
}
