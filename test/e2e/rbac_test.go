package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/test/framework"
)

// defaultInstallUser is a ServiceAccount bound to config/rbac exactly as the default install
// binds the manager's (the shared manager of this suite also has push's RBAC), with the
// groups every ServiceAccount has.
func defaultInstallUser(t *testing.T) authorizationv1.SubjectAccessReviewSpec {
	t.Helper()
	user, err := framework.BindRBACTo(context.Background(), plane.Config, "rbac-probe")
	if err != nil {
		t.Fatal(err)
	}
	return authorizationv1.SubjectAccessReviewSpec{User: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + framework.ManagerNamespace, "system:authenticated"}}
}

// access asks the API server, through a SubjectAccessReview, whether spec may do attrs.
func access(t *testing.T, spec authorizationv1.SubjectAccessReviewSpec, attrs authorizationv1.ResourceAttributes) bool {
	t.Helper()
	spec.ResourceAttributes = &attrs
	sar, err := clientset(t).AuthorizationV1().SubjectAccessReviews().Create(context.Background(),
		&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

func describe(a authorizationv1.ResourceAttributes) string {
	where := "cluster-wide"
	if a.Namespace != "" {
		where = "in " + a.Namespace
	}
	what := a.Resource
	if a.Subresource != "" {
		what += "/" + a.Subresource
	}
	if a.Name != "" {
		what += " " + a.Name
	}
	return fmt.Sprintf("%s %s %s", a.Verb, what, where)
}

// The manager's token, bound by config/rbac as the default install binds it, reads no Secret but
// its own two: it cannot list or watch Secrets anywhere, nor get one outside its
// namespace, and can do what the controllers need.
func TestManagerTokenReadsOnlyItsOwnSecrets(t *testing.T) {
	ns := namespace(t)
	managerUser := defaultInstallUser(t)
	cases := []struct {
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: "kube-system", Name: "anything"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "s3-credentials"}, false},
		{authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: framework.ManagerNamespace}, false},
		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: ns, Name: "x"}, false},
		{authorizationv1.ResourceAttributes{Verb: "delete", Resource: "secrets", Namespace: ns, Name: "x"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: framework.ManagerNamespace, Name: "some-other-secret"}, false},
		// What it needs: its own two Secrets by name, and creating the ones it makes.
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: framework.ManagerNamespace, Name: "kiln-webhook-cert"}, true},
		{authorizationv1.ResourceAttributes{Verb: "update", Resource: "secrets", Namespace: framework.ManagerNamespace, Name: "kiln-webhook-cert"}, true},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: framework.ManagerNamespace, Name: "kiln-token-key"}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: ns}, true},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "jobs", Group: "batch", Namespace: ns}, true},
		{authorizationv1.ResourceAttributes{Verb: "patch", Resource: "trainingjobs", Subresource: "status", Group: "kiln.dev", Namespace: ns}, true},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Subresource: "log", Namespace: ns, Name: "trial-0"}, true},
		// Nothing that would let it raise its own rights.
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "clusterrolebindings", Group: "rbac.authorization.k8s.io"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "serviceaccounts", Namespace: "kube-system"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "kube-system", Name: "default"}, false},
	}
	for _, tc := range cases {
		if got := access(t, managerUser, tc.attrs); got != tc.want {
			t.Errorf("manager may %s: %v, want %v", describe(tc.attrs), got, tc.want)
		}
	}
	// Push is opt-in because it needs more: the suite's manager has config/push.
	pushUser := authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + framework.ManagerNamespace + ":" + framework.ManagerServiceAccount,
		Groups: managerUser.Groups,
	}
	webhookSecret := authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns, Name: "repo-webhook"}
	if !access(t, pushUser, webhookSecret) {
		t.Errorf("with push on, the manager may not %s", describe(webhookSecret))
	}
	if list := (authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}); access(t, pushUser, list) {
		t.Errorf("with push on, the manager may %s", describe(list))
	}
}

// kiln-edit and kiln-view aggregate into the built-in roles: a user bound to `edit` in a
// namespace creates a TrainingJob there, one bound to `view` reads but cannot create.
func TestNamespaceRolesCoverKilnKinds(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	admin := kilnClient(t)
	for user, role := range map[string]string{"alice": "edit", "bob": "view"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}
		if err := admin.Create(ctx, rb); err != nil {
			t.Fatal(err)
		}
	}
	user := func(name string) authorizationv1.SubjectAccessReviewSpec {
		return authorizationv1.SubjectAccessReviewSpec{User: name, Groups: []string{"system:authenticated"}}
	}
	tjs := func(verb string) authorizationv1.ResourceAttributes {
		return authorizationv1.ResourceAttributes{Verb: verb, Group: "kiln.dev", Resource: "trainingjobs", Namespace: ns}
	}
	// The aggregation controller of kube-controller-manager copies the rules in.
	framework.Eventually(t, time.Minute, func() error {
		if !access(t, user("alice"), tjs("create")) {
			return fmt.Errorf("edit does not include creating TrainingJobs yet")
		}
		if !access(t, user("bob"), tjs("list")) {
			return fmt.Errorf("view does not include listing TrainingJobs yet")
		}
		return nil
	})
	for _, kind := range []string{"trainingjobs", "sweeps", "modelservers", "notebooks"} {
		for _, verb := range []string{"create", "update", "patch", "delete"} {
			a := authorizationv1.ResourceAttributes{Verb: verb, Group: "kiln.dev", Resource: kind, Namespace: ns}
			if !access(t, user("alice"), a) {
				t.Errorf("edit may not %s", describe(a))
			}
			if access(t, user("bob"), a) {
				t.Errorf("view may %s", describe(a))
			}
		}
		status := authorizationv1.ResourceAttributes{Verb: "patch", Group: "kiln.dev", Resource: kind, Subresource: "status", Namespace: ns}
		if access(t, user("alice"), status) {
			t.Errorf("edit may %s: status is the controllers'", describe(status))
		}
		elsewhere := authorizationv1.ResourceAttributes{Verb: "create", Group: "kiln.dev", Resource: kind, Namespace: "default"}
		if access(t, user("alice"), elsewhere) {
			t.Errorf("edit in %s may %s", ns, describe(elsewhere))
		}
	}

	// And for real, as the user: the create goes through the webhooks and is stored.
	as := func(name string) client.Client {
		cfg := rest.CopyConfig(plane.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: name}
		scheme, err := manager.Scheme()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := as("alice").Create(ctx, trainingJob(ns, "by-alice")); err != nil {
		t.Errorf("a user with edit in %s cannot create a TrainingJob there: %v", ns, err)
	}
	if err := as("bob").Create(ctx, trainingJob(ns, "by-bob")); err == nil {
		t.Errorf("a user with view in %s created a TrainingJob", ns)
	}
}

// A TrainingJob naming a claim that does not exist is admitted (admission does not say
// what exists) and waits with Admitted=False, ReferenceNotFound, naming the claim, and a
// Warning Event; it starts once the claim is there. This was a webhook refusal once.
func TestMissingClaimIsReportedByTheControllerNotAdmission(t *testing.T) {
	ctx := context.Background()
	c, ns := kilnClient(t), namespace(t)
	tj := trainingJob(ns, "needs-shards")
	tj.Spec.Data = []v1alpha1.DataInput{{Name: "shards", URI: "pvc://shards/train"}}
	create(t, c, tj)
	got := waitFor(t, c, tj, func(got *v1alpha1.TrainingJob) error {
		if apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.TrainingJobAdmitted) == nil {
			return errors.New("no Admitted condition yet")
		}
		return nil
	})
	cond := wantCondition(t, got, v1alpha1.TrainingJobAdmitted, metav1.ConditionFalse, v1alpha1.ReasonReferenceNotFound)
	if !strings.Contains(cond.Message, "spec.data[0].uri: no PersistentVolumeClaim shards in namespace "+ns) {
		t.Errorf("message %q does not name the missing claim", cond.Message)
	}
	framework.Eventually(t, timeout, func() error {
		if len(events(t, ns, tj.Name, v1alpha1.ReasonReferenceNotFound)) == 0 {
			return errors.New("no ReferenceNotFound Event yet")
		}
		return nil
	})
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shards"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := c.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	// The controller looks again within a minute (noShapeRetry).
	framework.Eventually(t, 2*time.Minute, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(tj), got); err != nil {
			return err
		}
		if got.Status.Shape == nil {
			return fmt.Errorf("not started yet: %s", conditions(got))
		}
		return nil
	})
}
