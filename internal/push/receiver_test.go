package push

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// tableTargets is the receiver's view of a cluster, as a table: the real one
// (ClusterTargets) is tested against an API server in test/integration.
type tableTargets struct {
	targets []Target
	secrets map[string]string // by target
}

func (f *tableTargets) Find(_ context.Context, repos []string) ([]Target, error) {
	var out []Target
	for _, t := range f.targets {
		for _, r := range repos {
			if RepoKey(t.Config.Repository) == r {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

func (f *tableTargets) Secret(_ context.Context, t Target) ([]byte, error) {
	return []byte(f.secrets[t.String()]), nil
}

type listQueue struct {
	got  []Request
	full bool
}

func (q *listQueue) Enqueue(r Request) error {
	if q.full {
		return ErrQueueFull
	}
	q.got = append(q.got, r)
	return nil
}

func target(name, repo, branch string) Target {
	return Target{Kind: KindModelServer, NamespacedName: types.NamespacedName{Namespace: "team", Name: name},
		Config: Config{Repository: repo, Branch: branch, WebhookSecret: name + "-hook", Image: "registry.example/" + name}}
}

const commit = "0123456789abcdef0123456789abcdef01234567"

func githubBody(repo, ref string) string {
	b, _ := json.Marshal(map[string]any{"ref": ref, "after": commit, "repository": map[string]any{
		"clone_url": repo, "html_url": strings.TrimSuffix(repo, ".git"), "ssh_url": strings.Replace(repo, "https://github.com/", "git@github.com:", 1),
	}})
	return string(b)
}

func gitlabBody(repo, ref string) string {
	b, _ := json.Marshal(map[string]any{"object_kind": "push", "ref": ref, "after": commit, "checkout_sha": commit,
		"project": map[string]any{"git_http_url": repo, "web_url": strings.TrimSuffix(repo, ".git")}})
	return string(b)
}

type call struct {
	provider Provider
	method   string
	headers  map[string]string
	body     string
	// chunked hides the body's length, so only reading it finds it too large.
	chunked bool
}

func github(body, secret, delivery string) call {
	return call{provider: GitHub, body: body, headers: map[string]string{
		"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": Sign([]byte(body), []byte(secret)),
	}}
}

func gitlab(body, token, delivery string) call {
	return call{provider: GitLab, body: body, headers: map[string]string{
		"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": token,
	}}
}

func TestReceiver(t *testing.T) {
	const repo = "https://github.com/acme/model.git"
	main := githubBody(repo, "refs/heads/main")
	two := &tableTargets{
		targets: []Target{target("a", "https://github.com/Acme/Model", "main"), target("b", repo, "main")},
		secrets: map[string]string{"modelserver/team/a": "secret-a", "modelserver/team/b": "secret-b"},
	}
	one := &tableTargets{targets: []Target{target("a", repo, "main")}, secrets: map[string]string{"modelserver/team/a": "secret-a"}}
	tests := []struct {
		name    string
		targets *tableTargets
		full    bool
		calls   []call
		codes   []int
		queued  []string // targets queued, over all calls
		message string   // in the last reply
	}{{
		name: "a signed push builds the objects whose secret signed it", targets: two,
		calls: []call{github(main, "secret-b", "d1")},
		codes: []int{202}, queued: []string{"modelserver/team/b"},
	}, {
		name: "a bad signature changes nothing", targets: one,
		calls: []call{github(main, "guess", "d1")},
		codes: []int{401}, message: "signature matches no secret",
	}, {
		name: "no signature changes nothing", targets: one,
		calls: []call{{provider: GitHub, body: main, headers: map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1"}}},
		codes: []int{401},
	}, {
		name: "a signature of another body changes nothing", targets: one,
		calls: []call{func() call {
			c := github(githubBody(repo, "refs/heads/other"), "secret-a", "d1")
			c.body = main
			return c
		}()},
		codes: []int{401},
	}, {
		name: "an empty secret verifies nothing", targets: &tableTargets{targets: one.targets, secrets: map[string]string{}},
		calls: []call{github(main, "", "d1")},
		codes: []int{401},
	}, {
		name: "a replayed delivery is ignored", targets: one,
		calls: []call{github(main, "secret-a", "d1"), github(main, "secret-a", "d1"), github(main, "secret-a", "d2")},
		codes: []int{202, 200, 202}, queued: []string{"modelserver/team/a", "modelserver/team/a"},
		message: "",
	}, {
		name: "a forged delivery does not block the real one", targets: one,
		calls: []call{github(main, "guess", "d1"), github(main, "secret-a", "d1")},
		codes: []int{401, 202}, queued: []string{"modelserver/team/a"},
	}, {
		name: "an unknown repository is not found", targets: one,
		calls: []call{github(githubBody("https://github.com/acme/other.git", "refs/heads/main"), "secret-a", "d1")},
		codes: []int{404},
	}, {
		name: "an oversized body is refused before it is read", targets: one,
		calls: []call{github(strings.Repeat(" ", 2000)+main, "secret-a", "d1")},
		codes: []int{413},
	}, {
		name: "an oversized body of unknown length is refused", targets: one,
		calls: []call{func() call {
			c := github(strings.Repeat(" ", 2000)+main, "secret-a", "d1")
			c.chunked = true
			return c
		}()},
		codes: []int{413},
	}, {
		name: "a push to another branch changes nothing", targets: one,
		calls: []call{github(githubBody(repo, "refs/heads/dev"), "secret-a", "d1")},
		codes: []int{200}, message: "no object deploys branch dev",
	}, {
		name: "a tag push changes nothing", targets: one,
		calls: []call{github(githubBody(repo, "refs/tags/v1"), "secret-a", "d1")},
		codes: []int{200}, message: "not a push of a branch head",
	}, {
		name: "a ping is answered", targets: one,
		calls: []call{func() call {
			c := github(`{"zen":"hi","repository":{"clone_url":"`+repo+`"}}`, "secret-a", "d1")
			c.headers["X-GitHub-Event"] = "ping"
			return c
		}()},
		codes: []int{200}, message: `"ping" events change nothing`,
	}, {
		name: "GitLab: the right token builds", targets: one,
		calls: []call{gitlab(gitlabBody(repo, "refs/heads/main"), "secret-a", "u1")},
		codes: []int{202}, queued: []string{"modelserver/team/a"},
	}, {
		name: "GitLab: a wrong token changes nothing", targets: one,
		calls: []call{gitlab(gitlabBody(repo, "refs/heads/main"), "secret-", "u1")},
		codes: []int{401},
	}, {
		name: "GitLab: a replayed delivery is ignored", targets: one,
		calls: []call{gitlab(gitlabBody(repo, "refs/heads/main"), "secret-a", "u1"), gitlab(gitlabBody(repo, "refs/heads/main"), "secret-a", "u1")},
		codes: []int{202, 200}, queued: []string{"modelserver/team/a"},
	}, {
		name: "not JSON", targets: one,
		calls: []call{github("{", "secret-a", "d1")},
		codes: []int{400},
	}, {
		name: "no delivery id", targets: one,
		calls: []call{github(main, "secret-a", "")},
		codes: []int{400},
	}, {
		name: "only POST", targets: one,
		calls: []call{func() call { c := github(main, "secret-a", "d1"); c.method = http.MethodGet; return c }()},
		codes: []int{405},
	}, {
		name: "a full queue asks for redelivery, and takes it", targets: one, full: true,
		calls: []call{github(main, "secret-a", "d1"), github(main, "secret-a", "d1")},
		codes: []int{503, 503},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := &listQueue{full: tc.full}
			r := &Receiver{Targets: tc.targets, Queue: q, MaxBody: 1024,
				Deliveries: NewDeliveries(16, time.Hour, clocktesting.NewFakeClock(time.Now()))}
			var codes []int
			var last Reply
			for _, c := range tc.calls {
				req := httptest.NewRequest(orDefault(c.method, http.MethodPost), "/push/"+string(c.provider), strings.NewReader(c.body))
				if c.chunked {
					req.ContentLength = -1
				}
				for k, v := range c.headers {
					req.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				r.Handler(c.provider).ServeHTTP(rec, req)
				codes = append(codes, rec.Code)
				last = Reply{}
				if err := json.Unmarshal(rec.Body.Bytes(), &last); err != nil {
					t.Fatalf("reply is not JSON: %v: %s", err, rec.Body)
				}
			}
			if diff := cmp.Diff(tc.codes, codes); diff != "" {
				t.Errorf("status codes (-want +got):\n%s\nlast reply: %+v", diff, last)
			}
			var queued []string
			for _, req := range q.got {
				queued = append(queued, req.Target.String())
				if req.Commit != commit {
					t.Errorf("queued commit %q, want %q", req.Commit, commit)
				}
			}
			if diff := cmp.Diff(tc.queued, queued); diff != "" {
				t.Errorf("queued (-want +got):\n%s", diff)
			}
			if !strings.Contains(last.Message, tc.message) {
				t.Errorf("last reply %q does not say %q", last.Message, tc.message)
			}
		})
	}
}

func TestDeliveriesExpire(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	d := NewDeliveries(2, time.Hour, clk)
	steps := []struct {
		id    string
		after time.Duration
		first bool
	}{
		{"a", 0, true}, {"a", 0, false}, {"b", 0, true}, {"c", 0, true},
		// the oldest is forgotten beyond the size, every one after the TTL
		{"a", 0, true}, {"c", 0, false}, {"c", 2 * time.Hour, true},
	}
	for i, s := range steps {
		clk.Step(s.after)
		if got := d.First(s.id); got != s.first {
			t.Errorf("step %d: First(%q) = %v, want %v", i, s.id, got, s.first)
		}
	}
}

func TestRepoKey(t *testing.T) {
	tests := map[string]string{
		"https://github.com/Acme/Model.git":        "github.com/acme/model",
		"https://github.com/acme/model":            "github.com/acme/model",
		"https://github.com/acme/model/":           "github.com/acme/model",
		"https://user:token@github.com/acme/model": "github.com/acme/model",
		"https://github.com:443/acme/model.git":    "github.com/acme/model",
		"git@github.com:acme/model.git":            "github.com/acme/model",
		"ssh://git@gitlab.example:22/g/sub/m.git":  "gitlab.example/g/sub/m",
		"git://127.0.0.1:9418/repo.git":            "127.0.0.1/repo",
		"git://127.0.0.1:40123/repo.git":           "127.0.0.1:40123/repo",
		"http://127.0.0.1:40123/repo.git":          "127.0.0.1:40123/repo",
		"":                                         "",
		"model":                                    "",
		"https://github.com":                       "",
		"/local/path":                              "",
	}
	for in, want := range tests {
		if got := RepoKey(in); got != want {
			t.Errorf("RepoKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigFrom(t *testing.T) {
	valid := map[string]string{
		"push.kiln.dev/repository":     "https://github.com/acme/model.git",
		"push.kiln.dev/webhook-secret": "hook",
		"push.kiln.dev/image":          "registry.example:5000/acme/model",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range valid {
			m[k] = v
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		in      map[string]string
		want    Config
		problem string
	}{
		{name: "defaults", in: valid, want: Config{Repository: "https://github.com/acme/model.git", Branch: "main",
			WebhookSecret: "hook", Image: "registry.example:5000/acme/model", Build: "source", Dockerfile: "Dockerfile"}},
		{name: "no repository", in: with("push.kiln.dev/repository", ""), problem: `[push.kiln.dev/repository]: Invalid value: "": the repository URL is empty`},
		{name: "no webhook secret", in: with("push.kiln.dev/webhook-secret", ""), problem: `[push.kiln.dev/webhook-secret]: Invalid value: "": must name a Secret`},
		{name: "no image", in: with("push.kiln.dev/image", ""), problem: `[push.kiln.dev/image]: Invalid value: "": must name an image repository`},
		{name: "an image with a digest", in: with("push.kiln.dev/image", "r.example/m@sha256:"+strings.Repeat("a", 64)), problem: "must name an image repository, without tag or digest"},
		{name: "an unknown build", in: with("push.kiln.dev/build", "buildpacks"), problem: `[push.kiln.dev/build]: Unsupported value: "buildpacks"`},
		{name: "a Dockerfile outside", in: with("push.kiln.dev/dockerfile", "../Dockerfile"), problem: `[push.kiln.dev/dockerfile]: Invalid value: "../Dockerfile": must be a path inside`},
		{name: "credentials in the URL", in: with("push.kiln.dev/repository", "https://me:token@github.com/acme/model.git"), problem: `Invalid value: "(redacted)": credentials in the URL are refused: put the user in the Git Secret's "username"`},
		{name: "a token as the user", in: with("push.kiln.dev/repository", "https://ghp_token@github.com/acme/model.git"), problem: `Invalid value: "(redacted)": credentials in the URL are refused`},
		{name: "file://", in: with("push.kiln.dev/repository", "file:///var/run/secrets/kubernetes.io/serviceaccount"), problem: "file:// URLs are refused"},
		{name: "git://", in: with("push.kiln.dev/repository", "git://github.com/acme/model.git"), problem: "git:// URLs are refused"},
		{name: "http://", in: with("push.kiln.dev/repository", "http://github.com/acme/model.git"), problem: "http:// URLs are refused"},
		{name: "scp-like", in: with("push.kiln.dev/repository", "git@github.com:acme/model.git"), problem: "write it as ssh://git@github.com/acme/model.git"},
		{name: "ssh without a Git Secret", in: with("push.kiln.dev/repository", "ssh://git@github.com/acme/model.git"), problem: "needs push.kiln.dev/git-secret"},
		{name: "a bad service account", in: with("push.kiln.dev/service-account", "Not_A_Name"), problem: `must name a ServiceAccount`},
		{name: "a bad branch", in: with("push.kiln.dev/branch", "main..x"), problem: `[push.kiln.dev/branch]: Invalid value: "main..x": must be a branch name`},
		{name: "a bad registry secret", in: with("push.kiln.dev/registry-secret", "Not_A_Name"), problem: `[push.kiln.dev/registry-secret]: Invalid value: "Not_A_Name": must name a Secret`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if errs := Validate(tc.in); (len(errs) == 0) != (tc.problem == "") {
				t.Errorf("Validate = %v, want errors: %v", errs, tc.problem != "")
			}
			got, err := ConfigFrom(tc.in)
			switch {
			case tc.problem == "" && err != nil:
				t.Fatal(err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("error %v, want one saying %q", err, tc.problem)
			case tc.problem == "":
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestValidateLeavesOthersAlone(t *testing.T) {
	if errs := Validate(map[string]string{"kiln.dev/other": "x"}); len(errs) != 0 {
		t.Errorf("an object without push annotations: %v", errs)
	}
}
