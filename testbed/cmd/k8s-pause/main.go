// Command k8s-pause is the pod sandbox ("pause") process of the test bed's Kubernetes cluster (testbed/k8s): it
// holds the pod's namespaces and does nothing else until SIGTERM or SIGINT, then exits 0. As PID 1 of a pod that
// shares its process namespace it also reaps the orphans reparented to it, as Kubernetes' own pause does. Built
// static (CGO_ENABLED=0) into an image FROM scratch, since no registry's pause image can be pulled here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
