package push

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/source"
)

// IndexRepository indexes annotated TrainingJobs and ModelServers in the manager's
// cache by the RepoKey of their repository, so an event finds its objects without
// listing every object.
const IndexRepository = "push.kiln.dev/repository-key"

// Kinds that can be annotated for push-to-deploy.
const (
	KindModelServer = "ModelServer"
	KindTrainingJob = "TrainingJob"
)

// Config is an object's push-to-deploy annotations.
type Config struct {
	Repository     string
	Branch         string
	WebhookSecret  string
	Image          string
	RegistrySecret string
	GitSecret      string
	Build          string
	BaseImage      string
	Dockerfile     string
	ServiceAccount string
}

// ConfigFrom reads and checks an object's push-to-deploy annotations.
func ConfigFrom(a map[string]string) (Config, error) {
	c, errs := parse(a, field.NewPath("metadata", "annotations"))
	if len(errs) > 0 {
		return c, fmt.Errorf("push-to-deploy annotations: %w", errs.ToAggregate())
	}
	return c, nil
}

// Validate checks the push-to-deploy annotations of an object that has any, for
// admission: a half-annotated object would never deploy.
func Validate(a map[string]string) field.ErrorList {
	for k := range a {
		if strings.HasPrefix(k, "push.kiln.dev/") {
			_, errs := parse(a, field.NewPath("metadata", "annotations"))
			return errs
		}
	}
	return nil
}

func parse(a map[string]string, path *field.Path) (Config, field.ErrorList) {
	c := Config{
		Repository:     a[v1alpha1.AnnotationPushRepository],
		Branch:         orDefault(a[v1alpha1.AnnotationPushBranch], "main"),
		WebhookSecret:  a[v1alpha1.AnnotationPushWebhookSecret],
		Image:          a[v1alpha1.AnnotationPushImage],
		RegistrySecret: a[v1alpha1.AnnotationPushRegistrySecret],
		GitSecret:      a[v1alpha1.AnnotationPushGitSecret],
		Build:          orDefault(a[v1alpha1.AnnotationPushBuild], v1alpha1.PushBuildSource),
		BaseImage:      a[v1alpha1.AnnotationPushBaseImage],
		Dockerfile:     orDefault(a[v1alpha1.AnnotationPushDockerfile], "Dockerfile"),
		ServiceAccount: a[v1alpha1.AnnotationPushServiceAccount],
	}
	var errs field.ErrorList
	invalid := func(ann, value, msg string) { errs = append(errs, field.Invalid(path.Key(ann), value, msg)) }
	if u, err := source.ParseRepositoryURL(c.Repository); err != nil {
		value := c.Repository
		if parsed, perr := url.Parse(strings.TrimSpace(c.Repository)); perr == nil && parsed.User != nil {
			value = "(redacted)"
		}
		invalid(v1alpha1.AnnotationPushRepository, value, err.Error())
	} else {
		if RepoKey(c.Repository) == "" {
			invalid(v1alpha1.AnnotationPushRepository, c.Repository, "must be a Git URL")
		}
		if u.Scheme == "ssh" && c.GitSecret == "" {
			invalid(v1alpha1.AnnotationPushRepository, c.Repository, "an ssh:// repository needs "+v1alpha1.AnnotationPushGitSecret+": a Secret with ssh-privatekey and known_hosts (the host's pinned key)")
		}
		if u.Scheme == "ssh" && c.Build == v1alpha1.PushBuildDockerfile {
			invalid(v1alpha1.AnnotationPushRepository, c.Repository, "a Dockerfile build fetches over https:// only")
		}
	}
	if !validBranch(c.Branch) {
		invalid(v1alpha1.AnnotationPushBranch, c.Branch, "must be a branch name")
	}
	if _, err := name.NewRepository(c.Image); err != nil {
		invalid(v1alpha1.AnnotationPushImage, c.Image, "must name an image repository, without tag or digest")
	}
	for _, s := range []struct {
		ann, name string
		required  bool
	}{
		{v1alpha1.AnnotationPushWebhookSecret, c.WebhookSecret, true},
		{v1alpha1.AnnotationPushRegistrySecret, c.RegistrySecret, false},
		{v1alpha1.AnnotationPushGitSecret, c.GitSecret, false},
		{v1alpha1.AnnotationPushServiceAccount, c.ServiceAccount, false},
	} {
		if s.name == "" && !s.required {
			continue
		}
		if len(validation.IsDNS1123Subdomain(s.name)) > 0 {
			what := "a Secret"
			if s.ann == v1alpha1.AnnotationPushServiceAccount {
				what = "a ServiceAccount"
			}
			invalid(s.ann, s.name, "must name "+what+" in the same namespace")
		}
	}
	if c.Build != v1alpha1.PushBuildSource && c.Build != v1alpha1.PushBuildDockerfile {
		errs = append(errs, field.NotSupported(path.Key(v1alpha1.AnnotationPushBuild), c.Build, []string{v1alpha1.PushBuildSource, v1alpha1.PushBuildDockerfile}))
	}
	if strings.HasPrefix(c.Dockerfile, "/") || strings.Contains("/"+c.Dockerfile+"/", "/../") {
		invalid(v1alpha1.AnnotationPushDockerfile, c.Dockerfile, "must be a path inside the repository")
	}
	return c, errs
}

// validBranch accepts what Git accepts in a branch name, roughly: no spaces,
// control characters, "..", or the characters Git reserves.
func validBranch(b string) bool {
	if b == "" || len(b) > 255 || strings.Contains(b, "..") || strings.HasPrefix(b, "-") || strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") {
		return false
	}
	for _, r := range b {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("~^:?*[\\", r) {
			return false
		}
	}
	return true
}

// Target is an object annotated for push-to-deploy.
type Target struct {
	Kind string
	types.NamespacedName
	Config Config
}

// String is the target's key in the build queue and in replies: kind/namespace/name.
func (t Target) String() string { return strings.ToLower(t.Kind) + "/" + t.Namespace + "/" + t.Name }

// Targets finds the objects annotated for a repository and reads their webhook secrets.
type Targets interface {
	Find(ctx context.Context, repositories []string) ([]Target, error)
	Secret(ctx context.Context, t Target) ([]byte, error)
}

// ClusterTargets finds targets through the manager's cache and its repository
// index, and reads Secrets live (the cache holds only Kiln's own Secrets).
type ClusterTargets struct {
	Cache client.Reader
	Live  client.Reader
}

// IndexFields adds IndexRepository to the manager's cache.
func IndexFields(ctx context.Context, indexer client.FieldIndexer) error {
	for _, obj := range []client.Object{&v1alpha1.ModelServer{}, &v1alpha1.TrainingJob{}} {
		if err := indexer.IndexField(ctx, obj, IndexRepository, repositoryKey); err != nil {
			return fmt.Errorf("indexing %T by repository: %w", obj, err)
		}
	}
	return nil
}

func repositoryKey(o client.Object) []string {
	if k := RepoKey(o.GetAnnotations()[v1alpha1.AnnotationPushRepository]); k != "" {
		return []string{k}
	}
	return nil
}

// Find returns every object annotated for one of the repositories. Objects whose
// annotations are incomplete are left out (and logged): no event can deploy them.
func (f *ClusterTargets) Find(ctx context.Context, repositories []string) ([]Target, error) {
	var out []Target
	add := func(kind string, o client.Object) {
		c, err := ConfigFrom(o.GetAnnotations())
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("push event for an object with invalid annotations", "kind", kind, "object", client.ObjectKeyFromObject(o), "problem", err.Error())
			return
		}
		out = append(out, Target{Kind: kind, NamespacedName: client.ObjectKeyFromObject(o), Config: c})
	}
	for _, key := range repositories {
		var servers v1alpha1.ModelServerList
		if err := f.Cache.List(ctx, &servers, client.MatchingFields{IndexRepository: key}); err != nil {
			return nil, fmt.Errorf("listing ModelServers of %s: %w", key, err)
		}
		for i := range servers.Items {
			add(KindModelServer, &servers.Items[i])
		}
		var jobs v1alpha1.TrainingJobList
		if err := f.Cache.List(ctx, &jobs, client.MatchingFields{IndexRepository: key}); err != nil {
			return nil, fmt.Errorf("listing TrainingJobs of %s: %w", key, err)
		}
		for i := range jobs.Items {
			add(KindTrainingJob, &jobs.Items[i])
		}
	}
	return out, nil
}

// Secret reads the target's webhook secret, by name and live (the manager caches no
// Secrets). The permission is not in the generated role: config/push grants
// it, so only an install that turns push on can read tenants' Secrets.
func (f *ClusterTargets) Secret(ctx context.Context, t Target) ([]byte, error) {
	s := &corev1.Secret{}
	if err := f.Live.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Config.WebhookSecret}, s); err != nil {
		return nil, fmt.Errorf("reading the webhook secret %s/%s: %w", t.Namespace, t.Config.WebhookSecret, err)
	}
	return s.Data[v1alpha1.PushWebhookSecretKey], nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
