// Package integration runs Kiln's controllers against a real API server and etcd, without a
// scheduler, Job controller or nodes that run anything: tests create the objects those would,
// so every intermediate state can be held still and looked at.
package integration

import (
	"os"
	"testing"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/test/framework"
)

var plane *controlplane.Plane

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m.Run, "", 0, &plane))
}
