package source_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"kiln.dev/kiln/internal/source"
)

func TestParseRepositoryURL(t *testing.T) {
	tests := []struct {
		url     string
		want    string // the URL fetched, when accepted
		problem string // part of the error, when refused
	}{
		{url: "https://github.com/acme/model.git", want: "https://github.com/acme/model.git"},
		{url: "HTTPS://GitHub.com:8443/acme/model", want: "https://github.com:8443/acme/model"},
		{url: "ssh://git@github.com/acme/model.git", want: "ssh://git@github.com/acme/model.git"},
		{url: "https://[2001:db8::1]/acme/m", want: "https://[2001:db8::1]/acme/m"},
		{url: "file:///var/run/secrets/kubernetes.io", problem: "file:// URLs are refused"},
		{url: "FILE:///etc", problem: "file:// URLs are refused"},
		{url: "git://github.com/acme/model.git", problem: "git:// URLs are refused"},
		{url: "http://github.com/acme/model.git", problem: "http:// URLs are refused"},
		{url: "ext::sh -c id", problem: "scp-like"},
		{url: "git@github.com:acme/model.git", problem: "ssh://git@github.com/acme/model.git"},
		{url: "/srv/git/model.git", problem: "a local path"},
		{url: "../model", problem: "a local path"},
		{url: "https://user:token@github.com/acme/m.git", problem: `Git Secret's "username"`},
		{url: "https://token@github.com/acme/m.git", problem: `token in its "password"`},
		{url: "ssh://git:pw@github.com/acme/m.git", problem: `"ssh-privatekey"`},
		{url: "https://github.com", problem: "no path"},
		{url: "https:///acme/m", problem: "no host"},
		{url: "https://github.com/acme/m?x=1", problem: "without query"},
		{url: "https://github.com/acme/../m", problem: ".."},
		{url: "https://github.com/acme/m\n", want: "https://github.com/acme/m"},
		{url: "https://github.com/ac\x00me", problem: "control characters"},
		{url: "", problem: "empty"},
	}
	for _, tc := range tests {
		u, err := source.ParseRepositoryURL(tc.url)
		switch {
		case tc.problem != "":
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%q: error %v, want one saying %q", tc.url, err, tc.problem)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.url, err)
		case u.String() != tc.want:
			t.Errorf("%q: fetches %q, want %q", tc.url, u.String(), tc.want)
		}
	}
}

type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range f[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestPolicyCheck(t *testing.T) {
	denied, err := source.ParseCIDRs(source.DefaultDeniedCIDRs)
	if err != nil {
		t.Fatal(err)
	}
	p := source.Policy{
		DeniedCIDRs:  denied,
		AllowedHosts: []string{"git.internal", "127.0.0.1:3000"},
		Resolver: fakeResolver{
			"github.com":      {"140.82.121.4"},
			"localhost.evil":  {"127.0.0.1"},
			"metadata.evil":   {"169.254.169.254"},
			"mixed.evil":      {"140.82.121.4", "::1"},
			"service.evil":    {"10.96.0.1"},
			"pods.evil":       {"10.244.3.7"},
			"git.internal":    {"10.96.4.4"},
			"mapped.evil":     {"::ffff:127.0.0.1"},
			"unspecified.bad": {"0.0.0.0"},
		},
	}
	tests := []struct {
		url     string
		problem string
	}{
		{url: "https://github.com/acme/m"},
		{url: "https://localhost.evil/acme/m", problem: "loopback"},
		{url: "https://127.0.0.1/acme/m", problem: "loopback"},
		{url: "https://[::1]/acme/m", problem: "loopback"},
		{url: "https://mapped.evil/acme/m", problem: "loopback"},
		{url: "https://metadata.evil/latest", problem: "link-local"},
		{url: "https://169.254.169.254/latest", problem: "link-local"},
		{url: "https://[fe80::1]/x", problem: "link-local"},
		{url: "https://mixed.evil/acme/m", problem: "loopback"},
		{url: "https://service.evil/acme/m", problem: "10.96.0.0/12"},
		{url: "https://pods.evil/acme/m", problem: "10.244.0.0/16"},
		{url: "https://unspecified.bad/acme/m", problem: "unspecified"},
		{url: "https://git.internal/acme/m"},   // allowed by name
		{url: "https://127.0.0.1:3000/acme/m"}, // allowed by host:port
		{url: "https://127.0.0.1:3001/acme/m", problem: "loopback"},
	}
	for _, tc := range tests {
		u, err := source.ParseRepositoryURL(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		err = p.Check(context.Background(), u)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: error %v, want one saying %q", tc.url, err, tc.problem)
		}
	}
}

// FuzzRepositoryURL: whatever the input, the parser does not panic, and what it
// accepts is https or ssh, has a host, holds no password, and parses again to the
// same URL.
func FuzzRepositoryURL(f *testing.F) {
	for _, s := range []string{"https://github.com/acme/m.git", "ssh://git@h/x", "file:///etc", "git@h:x", "https://u:p@h/x",
		"https://[::1]:22/x", "http://h/x", "https://h/%2e%2e/x", "ssh://h:0/x", "https://h/x#f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := source.ParseRepositoryURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "https" && u.Scheme != "ssh" {
			t.Fatalf("%q accepted with scheme %q", raw, u.Scheme)
		}
		if u.Host == "" || u.Path == "" {
			t.Fatalf("%q accepted without host or path: %+v", raw, u)
		}
		if u.Scheme == "https" && u.User != "" {
			t.Fatalf("%q accepted with a user", raw)
		}
		again, err := source.ParseRepositoryURL(u.String())
		if err != nil || again != u {
			t.Fatalf("%q accepted as %q, which parses to %+v, %v", raw, u.String(), again, err)
		}
	})
}
