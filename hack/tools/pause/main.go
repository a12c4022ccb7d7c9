// Command pause holds a pod's namespaces open on a real local node: the sandbox image
// containerd starts first in every pod. It blocks until SIGTERM or SIGINT and exits 0. Pods do
// not share their process namespace by default, so it reaps no other processes.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
