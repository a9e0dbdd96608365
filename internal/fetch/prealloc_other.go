//go:build !linux

package fetch

import "os"

// preallocate does nothing off Linux: the spool's file grows as it is written.
func preallocate(*os.File, int64) error { return nil }
