// Package rollout waits for workloads to finish rolling out, as `kubectl rollout status`
// does, so the chart's hooks need no kubectl image.
package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DaemonSetDone reports whether ds has rolled out on every node it is scheduled to, with the
// reason when not: kubectl's rule for a RollingUpdate DaemonSet (the controller has seen the
// latest spec, and every scheduled pod is updated and available).
func DaemonSetDone(ds *appsv1.DaemonSet) (bool, string) {
	if ds.Spec.UpdateStrategy.Type != "" && ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		return false, fmt.Sprintf("update strategy %s: rollout status only covers RollingUpdate", ds.Spec.UpdateStrategy.Type)
	}
	s := ds.Status
	if ds.Generation > s.ObservedGeneration {
		return false, fmt.Sprintf("waiting for the controller to see generation %d (observed %d)", ds.Generation, s.ObservedGeneration)
	}
	if s.UpdatedNumberScheduled < s.DesiredNumberScheduled {
		return false, fmt.Sprintf("%d of %d updated pods scheduled", s.UpdatedNumberScheduled, s.DesiredNumberScheduled)
	}
	if s.NumberAvailable < s.DesiredNumberScheduled {
		return false, fmt.Sprintf("%d of %d updated pods available", s.NumberAvailable, s.DesiredNumberScheduled)
	}
	return true, fmt.Sprintf("%d of %d pods available", s.NumberAvailable, s.DesiredNumberScheduled)
}

// WaitDaemonSet polls the DaemonSet every interval until it is done or ctx ends. A DaemonSet
// that does not exist yet is waited for; other API errors are logged and retried.
func WaitDaemonSet(ctx context.Context, client kubernetes.Interface, namespace, name string, interval time.Duration, log *slog.Logger) error {
	last := ""
	for {
		ds, err := client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		var msg string
		if err == nil {
			var done bool
			if done, msg = DaemonSetDone(ds); done {
				log.Info("daemonset rolled out", "namespace", namespace, "name", name, "status", msg)
				return nil
			}
		} else {
			msg = err.Error()
		}
		if msg != last {
			log.Info("waiting for daemonset", "namespace", namespace, "name", name, "status", msg)
			last = msg
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemonset %s/%s: %s: %w", namespace, name, msg, ctx.Err())
		case <-time.After(interval):
		}
	}
}
