// Package source is what every path that builds from a tenant's repository shares:
// which repository URLs may be fetched at all (RepositoryURL, Policy), fetching one
// commit with go-git (Fetch), and the rule that a checkout or a local source
// directory cannot reach outside itself (VerifyTree, VerifyDir). The manager uses
// only the pure URL checks; cmd/kiln-build, inside the tenant's build Job, uses all
// of it; `kubectl kiln build` applies VerifyDir to its source directory. It has no
// Kubernetes imports.
package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Secret keys the error messages point at: a basic-auth Secret's username and
// password, an ssh-auth Secret's private key, and the known_hosts that pins an
// SSH host's key.
const (
	KeyUsername   = "username"
	KeyPassword   = "password"
	KeySSHKey     = "ssh-privatekey"
	KeyKnownHosts = "known_hosts"
	// KeyCABundle is an optional PEM bundle a private Git host's certificate chains to.
	KeyCABundle = "ca.crt"
)

// RepositoryURL is a repository URL that passed the syntax rules: https:// or
// ssh:// only, no credentials, a host name.
type RepositoryURL struct {
	// Scheme is "https" or "ssh".
	Scheme string
	// Host is the host name or IP literal, without port or brackets, lowercase.
	Host string
	// Port is the explicit port, or "".
	Port string
	// User is the SSH user (git@...), "" for https.
	User string
	// Path is the repository's path on the host, starting with "/", decoded;
	// rawPath its encoding when that is not the default one (url.URL's RawPath).
	Path    string
	rawPath string
}

// String is the URL to fetch.
func (u RepositoryURL) String() string {
	host := u.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if u.Port != "" {
		host += ":" + u.Port
	}
	out := url.URL{Scheme: u.Scheme, Host: host, Path: u.Path, RawPath: u.rawPath}
	if u.User != "" {
		out.User = url.User(u.User)
	}
	return out.String()
}

// HostPort is the address dialled: host and explicit or default port.
func (u RepositoryURL) HostPort() string {
	port := u.Port
	if port == "" {
		port = map[string]string{"https": "443", "ssh": "22"}[u.Scheme]
	}
	return net.JoinHostPort(u.Host, port)
}

// ParseRepositoryURL checks raw against the rules every fetch follows, without
// resolving or connecting: only https:// and ssh://; no file://, git://, http://,
// scp-like (host:path) or local paths; no credentials in the URL (they belong in
// the Git Secret, whose field the error names).
func ParseRepositoryURL(raw string) (RepositoryURL, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return RepositoryURL{}, errors.New("the repository URL is empty")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return RepositoryURL{}, errors.New("the repository URL holds control characters")
	}
	scheme, _, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~") {
			return RepositoryURL{}, errors.New("a local path is not a repository URL Kiln fetches: use an https:// or ssh:// URL")
		}
		if h, p, ok := strings.Cut(s, ":"); ok && !strings.Contains(h, "/") {
			return RepositoryURL{}, fmt.Errorf("scp-like URLs (host:path) are not fetched: write it as ssh://%s/%s", h, strings.TrimPrefix(p, "/"))
		}
		return RepositoryURL{}, errors.New("the repository URL has no scheme: use https:// or ssh://")
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "https", "ssh":
	case "file":
		return RepositoryURL{}, errors.New("file:// URLs are refused: a build fetches only from a Git host, over https:// or ssh://")
	case "git":
		return RepositoryURL{}, errors.New("git:// URLs are refused: the git protocol is unauthenticated and unencrypted; use https:// or ssh://")
	case "http":
		return RepositoryURL{}, errors.New("http:// URLs are refused: use https:// (a private CA goes in the Git Secret's " + KeyCABundle + ")")
	default:
		return RepositoryURL{}, fmt.Errorf("%s:// URLs are refused: use https:// or ssh://", scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		return RepositoryURL{}, errors.New("the repository URL does not parse")
	}
	if u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return RepositoryURL{}, errors.New("the repository URL must be scheme://host/path, without query or fragment")
	}
	out := RepositoryURL{Scheme: scheme, Host: strings.ToLower(u.Hostname()), Port: u.Port(), Path: u.Path}
	// Keep an encoding only where it differs from the default one and is a valid
	// one (url.Parse keeps any raw input, even one it would not write).
	if esc := u.EscapedPath(); esc != (&url.URL{Path: u.Path}).EscapedPath() {
		out.rawPath = esc
	}
	if u.User != nil {
		_, hasPassword := u.User.Password()
		switch {
		case scheme == "https":
			return RepositoryURL{}, fmt.Errorf("credentials in the URL are refused: put the user in the Git Secret's %q and the token in its %q", KeyUsername, KeyPassword)
		case hasPassword:
			return RepositoryURL{}, fmt.Errorf("a password in the URL is refused: put the key in the Git Secret's %q", KeySSHKey)
		}
		out.User = u.User.Username()
		if out.User == "" || strings.ContainsAny(out.User, "/@:") {
			return RepositoryURL{}, errors.New("the SSH user in the URL is not a user name")
		}
	}
	if out.Host == "" {
		return RepositoryURL{}, errors.New("the repository URL has no host")
	}
	if strings.ContainsAny(out.Host, "/\\@%") || strings.HasPrefix(out.Host, "-") {
		return RepositoryURL{}, errors.New("the repository URL's host is not a host name")
	}
	if out.Port != "" {
		if p, err := netip.ParseAddrPort("0.0.0.0:" + out.Port); err != nil || p.Port() == 0 {
			return RepositoryURL{}, errors.New("the repository URL's port is not a port")
		}
	}
	if strings.Trim(out.Path, "/") == "" {
		return RepositoryURL{}, errors.New("the repository URL has no path")
	}
	if slices.Contains(strings.Split(u.Path, "/"), "..") {
		return RepositoryURL{}, errors.New("the repository URL's path holds ..")
	}
	return out, nil
}

// Resolver looks host names up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DefaultDeniedCIDRs are the Service and pod ranges of a kubeadm cluster (and of
// most that copied its defaults). Loopback, link-local, unspecified and multicast
// addresses are refused whatever this list says.
var DefaultDeniedCIDRs = []string{"10.96.0.0/12", "10.244.0.0/16"}

// Policy says which hosts a repository may be on: not one that resolves to
// loopback, link-local (the cloud metadata endpoint), unspecified or multicast
// addresses, nor into DeniedCIDRs (the cluster's own Service and pod ranges),
// unless AllowedHosts names it.
type Policy struct {
	// AllowedHosts are host names (or IP literals), optionally with ":port", that
	// skip the address checks: an administrator's decision that they are Git hosts.
	AllowedHosts []string
	// DeniedCIDRs are further ranges to refuse.
	DeniedCIDRs []netip.Prefix
	// Resolver looks hosts up (default net.DefaultResolver).
	Resolver Resolver
}

// ParseCIDRs parses a list of CIDRs (a flag's value).
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Allowed says whether the administrator's allow-list names u's host.
func (p Policy) Allowed(u RepositoryURL) bool {
	for _, h := range p.AllowedHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if h == u.Host || h == strings.ToLower(u.HostPort()) || (u.Port != "" && h == net.JoinHostPort(u.Host, u.Port)) {
			return true
		}
	}
	return false
}

// Denied says why addr may not be connected to, or "".
func (p Policy) Denied(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case addr.IsLoopback():
		return "a loopback address"
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		return "a link-local address"
	case addr.IsUnspecified():
		return "an unspecified address"
	case addr.IsMulticast() || addr.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	for _, c := range p.DeniedCIDRs {
		if c.Contains(addr) {
			return "in the denied range " + c.String()
		}
	}
	return ""
}

// Check resolves u's host (no connection is made) and refuses it when an address
// it resolves to is denied, unless the allow-list names it.
func (p Policy) Check(ctx context.Context, u RepositoryURL) error {
	if p.Allowed(u) {
		return nil
	}
	_, err := p.Resolve(ctx, u.Host)
	return err
}

// Resolve returns host's addresses, refusing the host if any of them is denied
// (a name with one good and one bad address could be steered to the bad one).
func (p Policy) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		// A tenant names the host: a resolver it makes slow must not hold admission or a
		// deployer worker for longer than a lookup takes.
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err = r.LookupNetIP(lctx, "ip", host)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("resolving the repository host %s: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("the repository host %s has no address", host)
		}
	}
	for _, a := range addrs {
		if why := p.Denied(a); why != "" {
			return nil, fmt.Errorf("the repository host %s resolves to %s, %s: refused unless an administrator allows the host (--push-allowed-hosts)", host, a.Unmap(), why)
		}
	}
	return addrs, nil
}

// DialContext dials only addresses the policy allows: it resolves the host itself
// and connects to the address it checked, so a name that resolves differently at
// connect time (DNS rebinding) or a redirect to another host cannot reach a denied
// address. An allowed host is dialled as is.
func (p Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	if p.Allowed(RepositoryURL{Host: strings.ToLower(host), Port: port}) {
		return d.DialContext(ctx, network, address)
	}
	addrs, err := p.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var last error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}
