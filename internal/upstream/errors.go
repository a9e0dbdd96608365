package upstream

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a registry's non-success answer.
type Error struct {
	Role       string // Target, Source, Hub or Peer
	Registry   string
	Status     int
	RetryAfter string
	Body       string // first bytes of the registry's error body
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s answered %d %s", e.Role, e.Registry, e.Status, e.Body)
}

// ErrTimeout marks a registry that did not answer within the timeout.
var ErrTimeout = errors.New("upstream timed out")

// ErrUnavailable marks a registry skipped because it just failed.
var ErrUnavailable = errors.New("upstream unavailable (recent failures; retried shortly)")

// IsNotFound tells whether err is a registry's 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Status is the status of the registry's answer in err; 0 when there was none.
func Status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
