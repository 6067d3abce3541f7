package main

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkKubernetesRotation rotates a 3-replica StatefulSet as deploy/kubernetes ships it (layout local.yaml, its
// readiness probe and preStop sleep; grace 1 s) and, in the same run,
// restarts the same StatefulSet twice the way `kubectl rollout restart` does (each waits for the rollout to end).
// A rotation restarts every pod twice, each in turn and Ready before the next, so the two bare rollouts are its
// baseline. Goal: rotation / two bare rollouts <= 1.10.
func BenchmarkKubernetesRotation(b *testing.B) {
	kf := newKubeFixture(b, kubeOpts{layout: "local.yaml", shippedProbe: true})
	var rotation, bare time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if code, out := kf.rotator("rotate"); code != exitOK {
			b.Fatalf("rotate exited %d:\n%s", code, out)
		}
		rotation += time.Since(start)
		start = time.Now()
		kf.rolloutRestart()
		kf.rolloutRestart()
		bare += time.Since(start)
	}
	ratio := rotation.Seconds() / bare.Seconds()
	b.ReportMetric(ratio, "rotation/bare")
	fmt.Printf("kubernetes: rotation %s, two bare rollout restarts %s (mean of %d): ratio %.3f (goal <= 1.10)\n",
		(rotation / time.Duration(b.N)).Round(10*time.Millisecond), (bare / time.Duration(b.N)).Round(10*time.Millisecond), b.N, ratio)
}
