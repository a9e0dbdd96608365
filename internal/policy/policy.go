// Package policy names the choices the config offers as types, each with one
// Parse that config validation and the components that act on it call: how
// the webhook swaps images (imageSwapPolicy) and copies them
// (imageCopyPolicy) and private images (source.privateImages), what the
// proxy does on a miss (proxy.onMiss) and with private images (proxy.private). The empty string parses as the default.
package policy

import (
	"fmt"
	"strings"
	"time"
)

// Swap is imageSwapPolicy.
type Swap string

const (
	// SwapAlways rewrites every image.
	SwapAlways Swap = "always"
	// SwapExists rewrites only images the target has (the default).
	SwapExists Swap = "exists"
)

// ParseSwap reads imageSwapPolicy; "" is exists.
func ParseSwap(s string) (Swap, error) { return parse(s, SwapExists, SwapAlways, SwapExists) }

// Copy is imageCopyPolicy.
type Copy string

const (
	// CopyDelayed queues the copy and moves on (the default).
	CopyDelayed Copy = "delayed"
	// CopyImmediate queues the copy and waits for it up to the deadline.
	CopyImmediate Copy = "immediate"
	// CopyForce copies in the request, up to the deadline.
	CopyForce Copy = "force"
	// CopyNone never copies.
	CopyNone Copy = "none"
)

// ParseCopy reads imageCopyPolicy; "" is delayed.
func ParseCopy(s string) (Copy, error) {
	return parse(s, CopyDelayed, CopyDelayed, CopyImmediate, CopyForce, CopyNone)
}

// OnMiss is proxy.onMiss: what a pull of an image the target lacks gets.
type OnMiss string

const (
	// OnMissPassthrough serves the source at once, while the copy runs (the default).
	OnMissPassthrough OnMiss = "passthrough"
	// OnMissWait waits for the copy up to proxy.waitTimeout, then serves the target.
	OnMissWait OnMiss = "wait"
)

// ParseOnMiss reads proxy.onMiss; "" is passthrough.
func ParseOnMiss(s string) (OnMiss, error) {
	return parse(s, OnMissPassthrough, OnMissPassthrough, OnMissWait)
}

// Private is proxy.private: who may pull, from the target, an image its
// source does not serve anonymously.
type Private string

const (
	// PrivateDeny serves such an image only to a pull whose credentials the
	// source accepts; any other pull is told what makes containerd go on to
	// the next host (the origin), which then decides with the pod's own
	// credentials (the default).
	PrivateDeny Private = "deny"
	// PrivateAllow serves every image to every pull.
	PrivateAllow Private = "allow"
)

// ParsePrivate reads proxy.private; "" is deny.
func ParsePrivate(s string) (Private, error) { return parse(s, PrivateDeny, PrivateDeny, PrivateAllow) }

// PrivateImages is source.privateImages: which pods the webhook points at
// the copy of an image its source does not serve anonymously.
type PrivateImages string

const (
	// PrivateImagesCheck swaps such an image only for a pod whose own pull
	// secrets (or its service account's) the source accepts for it; any
	// other pod keeps the original, and the kubelet pulls it with the pod's
	// rights (the default).
	PrivateImagesCheck PrivateImages = "check"
	// PrivateImagesSwap swaps it for every pod, as the original did: the
	// mirror is shared by the whole cluster.
	PrivateImagesSwap PrivateImages = "swap"
)

// ParsePrivateImages reads source.privateImages; "" is check.
func ParsePrivateImages(s string) (PrivateImages, error) {
	return parse(s, PrivateImagesCheck, PrivateImagesCheck, PrivateImagesSwap)
}

// DefaultTagTTL is proxy.tagTTL's default: how long a tag's digest at its
// source is trusted. The proxy asks a source about a tag, and the webhook
// copies the tag of an imagePullPolicy: Always container again, at most
// this often.
const DefaultTagTTL = 5 * time.Minute

// parse finds s among values; "" is def. An unknown value is an error, and
// def, so that a caller that falls back (as the original did) has it.
func parse[T ~string](s string, def T, values ...T) (T, error) {
	if s == "" {
		return def, nil
	}
	for _, v := range values {
		if string(v) == s {
			return v, nil
		}
	}
	return def, fmt.Errorf("invalid value %q, must be one of: %s", s, names(values))
}

// names lists values in the order the documentation gives them.
func names[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
