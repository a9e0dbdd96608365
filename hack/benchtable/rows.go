package main

import (
	"fmt"
	"slices"
	"strings"
)

// row is one figure of the table: a metric of one benchmark, with the
// reference metric the same run measured, if any.
type row struct {
	label  string
	bench  string
	unit   string
	ref    string // the reference's unit on the same result line; "" for none
	refIs  string // what the reference is
	higher bool   // a higher value is better (throughput)
	aim    *aim
}

// aim is the target for a figure: on the value, or on the ratio.
type aim struct {
	onRatio bool
	op      string // "<=", ">=" or "="
	v       float64
}

// Size names used in the labels.
const (
	pullImage  = "256 MiB image (4 x 64 MiB layers)"
	smallImage = "3 MiB image (48 x 64 KiB layers)"
	copyImage  = "2-platform image (6 x 16 MiB layers)"
	review     = "3-container pod over HTTPS, 200/s for 10 s, warm cache"
	podStart   = "Pod create to Running on a real node, " + pullImage
	remote     = "source behind a 50 MB/s link with 20 ms added round trip"
	hubImage   = "48 MiB image (3 x 16 MiB layers)"
)

// rows are the figures named in the proxy and webhook issues and in the
// benchmark item, in the order the table shows them.
var rows = []row{
	{label: "Cold pull, 1 client, " + pullImage + ": wall s", bench: "BenchmarkPull",
		unit: "cold-wall-s", ref: "cold-direct-wall-s", refIs: "pull from the source",
		aim: &aim{onRatio: true, op: ">=", v: 0.83}},
	{label: "Cold pull, 1 client: CPU s of every process (client, proxy, source, target)", bench: "BenchmarkPull",
		unit: "cold-cpu-s", ref: "cold-direct-cpu-s", refIs: "pull from the source (client, source)"},
	{label: "Cold pull, 1 client: the proxy's CPU s during the pull", bench: "BenchmarkPull",
		unit: "cold-proxy-cpu-s"},
	{label: "Cold pull, 1 client: the proxy's CPU s copying into the target, after the pull", bench: "BenchmarkPull",
		unit: "copy-proxy-cpu-s"},
	{label: "Cold pull, 1 client: origin bytes per image byte (pull + copy into the target)", bench: "BenchmarkPull",
		unit: "cold-origin-B/image-B", ref: "cold-direct-origin-B/image-B", refIs: "pull from the source"},
	{label: "Warm pull, 1 client, " + pullImage + ": MiB/s over 3 pulls", bench: "BenchmarkPull",
		unit: "warm-MiB/s", ref: "warm-direct-MiB/s", refIs: "pull from the target", higher: true,
		aim: &aim{onRatio: true, op: ">=", v: 1}},
	{label: "Cold pull, 1 client, " + smallImage + ": ms per pull, 5 images", bench: "BenchmarkColdPullSmall",
		unit: "cold-ms", ref: "cold-direct-ms", refIs: "pull from the source"},
	{label: "Cold pulls, 10 clients at once, " + pullImage + ": wall s", bench: "BenchmarkColdPull10",
		unit: "wall-s/op", ref: "direct-wall-s/op", refIs: "10 pulls from the source",
		aim: &aim{onRatio: true, op: ">=", v: 0.95}},
	{label: "Cold pulls, 10 clients: origin GETs per blob (max)", bench: "BenchmarkColdPull10",
		unit: "max-source-fetches/blob", ref: "direct-max-source-fetches/blob", refIs: "10 pulls from the source",
		aim: &aim{op: "=", v: 1}},
	{label: "Cold pulls, 10 clients: origin bytes per image byte (pulls + copy)", bench: "BenchmarkColdPull10",
		unit: "origin-B/image-B", ref: "direct-origin-B/image-B", refIs: "10 pulls from the source"},
	{label: "Cold pulls, 10 clients: proxy peak RSS MiB (VmHWM)", bench: "BenchmarkColdPull10",
		unit: "peak-RSS-MiB", aim: &aim{op: "<=", v: 40}},
	{label: "Cold pulls, 10 clients: proxy peak anonymous RSS MiB (heap, stacks)", bench: "BenchmarkColdPull10",
		unit: "peak-anon-RSS-MiB"},
	{label: "Warm pulls, 10 clients at once, " + pullImage + ": wall s", bench: "BenchmarkPull",
		unit: "warm10-wall-s", ref: "warm10-direct-wall-s", refIs: "10 pulls from the target"},
	{label: "Warm pulls, 10 clients: proxy peak RSS MiB (VmHWM)", bench: "BenchmarkPull",
		unit: "warm10-peak-RSS-MiB", aim: &aim{op: "<=", v: 40}},
	{label: "Warm pulls, 10 clients: proxy peak anonymous RSS MiB (heap, stacks)", bench: "BenchmarkPull",
		unit: "warm10-peak-anon-RSS-MiB"},
	{label: "Copy of a " + copyImage + ": s", bench: "BenchmarkCopyVsRead",
		unit: "copy-s", ref: "read-s", refIs: "read of all blobs from the source"},
	{label: "Copy of a " + copyImage + ": s, against crane", bench: "BenchmarkCopyVsRead",
		unit: "copy-s", ref: "crane-copy-s", refIs: "crane's copy (crane.Copy, in process)", aim: &aim{onRatio: true, op: ">=", v: 1}},
	{label: "Copy of a " + copyImage + ": s, against skopeo", bench: "BenchmarkCopyVsRead",
		unit: "copy-s", ref: "skopeo-copy-s", refIs: "skopeo copy --all (a process)", aim: &aim{onRatio: true, op: ">=", v: 1.43}},
	{label: "Copy of a " + copyImage + ": MiB/s", bench: "BenchmarkCopyVsRead",
		unit: "copy-MiB/s", ref: "read-MiB/s", refIs: "read of all blobs from the source", higher: true},
	{label: "Re-copy of the same image (already in the target): s", bench: "BenchmarkCopyVsRead",
		unit: "recopy-s", ref: "read-s", refIs: "read of all blobs from the source"},
	{label: "`copy` of an image the target has (3 x 1 MiB layers), as a process: s", bench: "BenchmarkCopyCommand",
		unit: "present-copy-s", ref: "skopeo-present-copy-s", refIs: "skopeo copy of the same image (a process)", aim: &aim{op: "<=", v: 0.05}},
	{label: "`copy` of an image the target has: start-up alone (`version`): s", bench: "BenchmarkCopyCommand",
		unit: "version-s"},
	{label: "`copy` of an image the target has: requests to both registries", bench: "BenchmarkCopyCommand",
		unit: "requests"},
	{label: "Admission p50 ms, " + review, bench: "BenchmarkAdmission",
		unit: "p50_ms", ref: "ref-p50_ms", refIs: "same server echoing a fixed answer"},
	{label: "Admission p99 ms, " + review, bench: "BenchmarkAdmission",
		unit: "p99_ms", ref: "ref-p99_ms", refIs: "same server echoing a fixed answer",
		aim: &aim{op: "<=", v: 5}},
	{label: "Admission max ms", bench: "BenchmarkAdmission",
		unit: "max_ms", ref: "ref-max_ms", refIs: "same server echoing a fixed answer"},
	{label: "Admission reviews/s sent", bench: "BenchmarkAdmission", unit: "reviews/s"},
	{label: podStart + ", source on loopback: through the proxy, cold: s", bench: "BenchmarkPodStart/loopback",
		unit: "cold-s", ref: "direct-s", refIs: "pull straight from the source"},
	{label: podStart + ", source on loopback: through the proxy, warm (from the target): s", bench: "BenchmarkPodStart/loopback",
		unit: "warm-s", ref: "direct-s", refIs: "pull straight from the source"},
	{label: podStart + ", " + remote + ": through the proxy, cold: s", bench: "BenchmarkPodStart/remote",
		unit: "cold-s", ref: "direct-s", refIs: "pull straight from the source"},
	{label: podStart + ", " + remote + ": through the proxy, warm (from the target): s", bench: "BenchmarkPodStart/remote",
		unit: "warm-s", ref: "direct-s", refIs: "pull straight from the source"},
}

// skipped units are the testing package's own, which these benchmarks
// do not use as figures (each reports its own times).
var skipped = map[string]bool{"ns/op": true, "B/op": true, "allocs/op": true, "MB/s": true}

func init() {
	// The hub rows, one pair per fleet size, after the admission rows.
	var hub []row
	for _, n := range []int{1, 4, 8, 16} {
		who := fmt.Sprintf("%d node proxies", n)
		if n == 1 {
			who = "1 node proxy"
		}
		bench := fmt.Sprintf("BenchmarkHubColdPull/N=%d", n)
		hub = append(hub,
			row{label: "Cold pulls of one " + hubImage + " by " + who + " at once, through the hub: origin GETs per blob (max)", bench: bench,
				unit: "hub-origin-GETs/blob", ref: "direct-origin-GETs/blob", refIs: "the same, each proxy from the origin", aim: &aim{op: "=", v: 1}},
			row{label: "Cold pulls by " + who + " at once, through the hub: wall s", bench: bench,
				unit: "hub-wall-s", ref: "direct-wall-s", refIs: "the same, each proxy from the origin"})
	}
	at := slices.IndexFunc(rows, func(r row) bool { return strings.HasPrefix(r.bench, "BenchmarkPodStart") })
	rows = slices.Insert(rows, at, hub...)
	rows = slices.Insert(rows, at, peerRows()...)
}

// peerRows are BenchmarkPeers': per origin and client, each phase through
// our proxy and through distribution's, both against the origin straight,
// and the two proxies' peak RSS side by side.
func peerRows() []row {
	var out []row
	for _, c := range []struct{ sub, what, image string }{
		{"origin=loopback/client=containerd", "containerd-style client, source on loopback", pullImage},
		{"origin=loopback/client=crane", "crane-style client, source on loopback", pullImage},
		{"origin=remote/client=containerd", "containerd-style client, " + remote, "64 MiB image (4 x 16 MiB layers)"},
	} {
		bench := "BenchmarkPeers/" + c.sub
		for _, ph := range []struct{ unit, what, aim string }{
			{"cold", "1 cold pull", ""}, {"warm", "1 warm pull", ""},
			{"cold10", "10 cold pulls at once", ""}, {"warm10", "10 warm pulls at once", ""},
		} {
			label := fmt.Sprintf("Peers, %s, %s, %s: wall s, ", c.what, c.image, ph.what)
			out = append(out,
				row{label: label + "k8s-image-swapper (local store)", bench: bench, unit: ph.unit + "-s", ref: ph.unit + "-direct-s", refIs: "pull from the origin"},
				row{label: label + "distribution's proxy", bench: bench, unit: ph.unit + "-dist-s", ref: ph.unit + "-direct-s", refIs: "pull from the origin"})
		}
		for _, ph := range []string{"cold10", "warm10"} {
			out = append(out, row{label: fmt.Sprintf("Peers, %s, %s pulls: peak RSS MiB, k8s-image-swapper", c.what, ph), bench: bench,
				unit: ph + "-peak-RSS-MiB", ref: ph + "-dist-peak-RSS-MiB", refIs: "distribution's proxy", aim: &aim{op: "<=", v: 40}})
		}
	}
	return out
}
