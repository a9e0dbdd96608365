package webhook

import (
	"fmt"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
)

// slot is one image field of the pod.
type slot struct {
	list  string // containers, initContainers or ephemeralContainers
	index int
	name  string
	image string
	// pullAlways: imagePullPolicy Always, the kubelet pulls the tag each start.
	pullAlways bool
	// filled in by admit
	src      reference.Named
	decision string
	target   string // the image to write, when decision is swapped
}

func (s *slot) path() string { return fmt.Sprintf("/spec/%s/%d/image", s.list, s.index) }

// podSlots lists the image fields in the order they appear.
func podSlots(pod *corev1.Pod, all bool) []*slot {
	var out []*slot
	if all {
		for i, c := range pod.Spec.InitContainers {
			out = append(out, &slot{list: "initContainers", index: i, name: c.Name, image: c.Image,
				pullAlways: c.ImagePullPolicy == corev1.PullAlways})
		}
		for i, c := range pod.Spec.Containers {
			out = append(out, &slot{list: "containers", index: i, name: c.Name, image: c.Image,
				pullAlways: c.ImagePullPolicy == corev1.PullAlways})
		}
	}
	for i, c := range pod.Spec.EphemeralContainers {
		out = append(out, &slot{list: "ephemeralContainers", index: i, name: c.Name, image: c.Image,
			pullAlways: c.ImagePullPolicy == corev1.PullAlways})
	}
	return out
}

// changedImages keeps the slots whose image differs from the same
// container's in old (or whose container old lacks).
func changedImages(slots []*slot, old *corev1.Pod) []*slot {
	was := map[string]string{}
	for _, s := range podSlots(old, true) {
		was[s.list+"/"+s.name] = s.image
	}
	var out []*slot
	for _, s := range slots {
		if image, ok := was[s.list+"/"+s.name]; !ok || image != s.image {
			out = append(out, s)
		}
	}
	return out
}

func newEphemeral(slots []*slot, old *corev1.Pod) []*slot {
	had := map[string]bool{}
	for _, c := range old.Spec.EphemeralContainers {
		had[c.Name] = true
	}
	var out []*slot
	for _, s := range slots {
		if !had[s.name] {
			out = append(out, s)
		}
	}
	return out
}
