package controlplane

import (
	"testing"

	"kiln.dev/kiln/internal/podsecurity"
)

// The local Kiln's CoreDNS is a pod Kiln creates too, so it meets the restricted Pod
// Security profile like the rest (it listens on 1053 and needs no capability).
func TestCoreDNSMeetsTheRestrictedProfile(t *testing.T) {
	_, _, _, _, dep, _ := coreDNSObjects("kiln.local/coredns@sha256:0")
	problems, err := podsecurity.Restricted(&dep.Spec.Template.ObjectMeta, &dep.Spec.Template.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("CoreDNS breaks the restricted profile: %s", p)
	}
}
