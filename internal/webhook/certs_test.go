package webhook

import (
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestCertRenewal(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	day := 24 * time.Hour
	c := &Certs{Clock: clock, DNSNames: []string{"svc.ns.svc"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: 90 * day}
	data, err := c.issue(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.renewal(data); r != "" {
		t.Fatalf("a fresh certificate needs renewal: %s", r)
	}
	ca := string(data[keyCACert])

	clock.Step(59 * day)
	if r := c.renewal(data); r != "" {
		t.Fatalf("renewal after 59 of 90 days: %s", r)
	}
	clock.Step(2 * day)
	if r := c.renewal(data); !strings.Contains(r, "serving certificate expires") {
		t.Fatalf("renewal after 61 of 90 days = %q", r)
	}
	renewed, err := c.issue(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(renewed[keyCACert]) != ca || string(renewed[corev1.TLSCertKey]) == string(data[corev1.TLSCertKey]) {
		t.Fatal("a serving certificate renewal must keep the CA and change the certificate")
	}
	if r := c.renewal(renewed); r != "" {
		t.Fatalf("renewed certificate needs renewal: %s", r)
	}

	// The CA lives ten validities; a third before its end it is replaced, and
	// the old CA stays trusted beside the new one.
	clock.Step(540 * day)
	if r := c.renewal(renewed); !strings.Contains(r, "expires") {
		t.Fatalf("renewal near the CA's end = %q", r)
	}
	rotated, err := c.issue(renewed)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := parseCerts(rotated[keyCACert])
	if err != nil || len(cas) != 2 {
		t.Fatalf("bundle after a CA rotation has %d CAs (%v), want 2", len(cas), err)
	}
	if r := c.renewal(rotated); r != "" {
		t.Fatalf("rotated certificate needs renewal: %s", r)
	}

	c.DNSNames = append(c.DNSNames, "other.ns.svc")
	if r := c.renewal(rotated); !strings.Contains(r, "does not name other.ns.svc") {
		t.Fatalf("renewal for a new name = %q", r)
	}
}
