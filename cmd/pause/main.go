// Command pause is the sandbox ("pause") container of the local node's pods: it holds the pod's
// namespaces, reaps the zombies of processes that share its PID namespace, and exits cleanly on
// SIGINT or SIGTERM. containerd on the local node runs it as its sandbox_image; no image can be
// pulled here, so the project builds this one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
