package push

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Provider is a Git host whose push events Kiln receives.
type Provider string

const (
	GitHub Provider = "github"
	GitLab Provider = "gitlab"
)

// Paths the receiver serves, on its own server (Server).
const (
	GitHubPath = "/push/github"
	GitLabPath = "/push/gitlab"
)

// Event is the part of a push event Kiln acts on.
type Event struct {
	// Kind is the provider's event name (push, ping, Push Hook, ...).
	Kind string
	// Push is true for a push to a branch.
	Push bool
	// Delivery identifies this delivery; a redelivery of the same event keeps it.
	Delivery string
	// Repositories are the keys (RepoKey) of every URL the event gives for its repository.
	Repositories []string
	// Branch pushed to; empty for a tag.
	Branch string
	// Commit is the branch's new head; empty when the branch was deleted.
	Commit string
}

const zeroCommit = "0000000000000000000000000000000000000000"

// parse reads what Kiln needs from an event's headers and body. The body is not
// trusted yet: its signature is checked against the secrets of the objects it names.
func (p Provider) parse(h http.Header, body []byte) (Event, error) {
	var ev Event
	var payload struct {
		Ref     string `json:"ref"`
		After   string `json:"after"`
		Deleted bool   `json:"deleted"`
		// GitHub
		Repository struct {
			CloneURL string `json:"clone_url"`
			HTMLURL  string `json:"html_url"`
			SSHURL   string `json:"ssh_url"`
			GitURL   string `json:"git_url"`
			// GitLab's repository (deprecated there, still sent)
			GitHTTPURL string `json:"git_http_url"`
			GitSSHURL  string `json:"git_ssh_url"`
			Homepage   string `json:"homepage"`
		} `json:"repository"`
		// GitLab
		Project struct {
			GitHTTPURL string `json:"git_http_url"`
			GitSSHURL  string `json:"git_ssh_url"`
			WebURL     string `json:"web_url"`
		} `json:"project"`
	}
	switch p {
	case GitHub:
		ev.Kind, ev.Delivery = h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")
		ev.Push = ev.Kind == "push"
	case GitLab:
		ev.Kind, ev.Delivery = h.Get("X-Gitlab-Event"), h.Get("X-Gitlab-Event-UUID")
		ev.Push = ev.Kind == "Push Hook"
	default:
		return ev, fmt.Errorf("unknown provider %q", p)
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		return ev, fmt.Errorf("the body is not a JSON event: %w", err)
	}
	r := payload.Repository
	for _, u := range []string{r.CloneURL, r.HTMLURL, r.SSHURL, r.GitURL, r.GitHTTPURL, r.GitSSHURL, r.Homepage,
		payload.Project.GitHTTPURL, payload.Project.GitSSHURL, payload.Project.WebURL} {
		if k := RepoKey(u); k != "" && !slices.Contains(ev.Repositories, k) {
			ev.Repositories = append(ev.Repositories, k)
		}
	}
	ev.Branch, _ = strings.CutPrefix(payload.Ref, "refs/heads/")
	if ev.Branch == payload.Ref {
		ev.Branch = "" // a tag, or no ref at all
	}
	if !payload.Deleted && payload.After != zeroCommit {
		ev.Commit = payload.After
	}
	return ev, nil
}

// verify says whether the event was sent by someone who knows secret. GitHub signs
// the raw body with HMAC-SHA256; GitLab sends the secret token itself. Both are
// compared in constant time, and an empty secret verifies nothing.
func (p Provider) verify(h http.Header, body, secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	switch p {
	case GitHub:
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return false
		}
		got, err := hex.DecodeString(sig)
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	case GitLab:
		// Hashing first makes the comparison's time independent of the token's length too.
		got, want := sha256.Sum256([]byte(h.Get("X-Gitlab-Token"))), sha256.Sum256(secret)
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	return false
}

// Sign returns GitHub's X-Hub-Signature-256 value for body: for tests and for
// senders other than GitHub that speak its protocol.
func Sign(body, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// RepoKey reduces the many spellings of a repository's URL to one key, so that an
// object annotated with https://github.com/Acme/Model.git matches an event naming
// git@github.com:acme/model or https://github.com/acme/model: host (without user
// or default port) and path, lowercase, without ".git" or a trailing slash. It
// returns "" for what is not a repository URL.
func RepoKey(raw string) string {
	s := strings.TrimSpace(raw)
	if s == "" {
		return ""
	}
	var host, path string
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return ""
		}
		host, path = u.Host, u.Path
		switch {
		case u.Scheme == "https" && strings.HasSuffix(host, ":443"),
			u.Scheme == "http" && strings.HasSuffix(host, ":80"),
			u.Scheme == "ssh" && strings.HasSuffix(host, ":22"),
			u.Scheme == "git" && strings.HasSuffix(host, ":9418"):
			host = host[:strings.LastIndex(host, ":")]
		}
	} else {
		// scp-like: [user@]host:path
		h, p, ok := strings.Cut(s, ":")
		if !ok || strings.Contains(h, "/") {
			return ""
		}
		if i := strings.LastIndex(h, "@"); i >= 0 {
			h = h[i+1:]
		}
		host, path = h, p
	}
	path = strings.Trim(path, "/")
	path = strings.TrimSuffix(path, ".git")
	if host == "" || path == "" {
		return ""
	}
	return strings.ToLower(host + "/" + path)
}
