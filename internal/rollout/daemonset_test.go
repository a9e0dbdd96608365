package rollout

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

func TestDaemonSetDone(t *testing.T) {
	ds := func(gen, observed int64, desired, updated, available int32) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{}
		d.Generation = gen
		d.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
		d.Status = appsv1.DaemonSetStatus{ObservedGeneration: observed, DesiredNumberScheduled: desired,
			UpdatedNumberScheduled: updated, NumberAvailable: available}
		return d
	}
	onDelete := ds(1, 1, 1, 1, 1)
	onDelete.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	for _, c := range []struct {
		name string
		ds   *appsv1.DaemonSet
		want bool
	}{
		{"every pod updated and available", ds(2, 2, 3, 3, 3), true},
		{"no node to run on", ds(1, 1, 0, 0, 0), true},
		{"controller has not seen the spec", ds(2, 1, 3, 3, 3), false},
		{"a pod not updated", ds(1, 1, 3, 2, 3), false},
		{"a pod not available", ds(1, 1, 3, 3, 2), false},
		{"just created, no status", ds(1, 0, 0, 0, 0), false},
		{"OnDelete", onDelete, false},
	} {
		got, why := DaemonSetDone(c.ds)
		if got != c.want || why == "" {
			t.Errorf("%s: DaemonSetDone = %v (%q), want %v", c.name, got, why, c.want)
		}
	}
}
