package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ManagerNamespace and ManagerServiceAccount are where config/ installs the manager.
const (
	ManagerNamespace      = "kiln-system"
	ManagerServiceAccount = "kiln-manager"
)

// ManagerConfig installs the manager's ServiceAccount and RBAC from config/rbac (as a user's
// install would) and returns admin's connection re-credentialed with a token of that
// ServiceAccount, so tests run the manager with exactly the permissions Kiln ships and a
// missing one fails a test rather than a user's cluster.
//
// components are further kustomize components under config/components whose RBAC the
// manager gets too, as an install that turns them on would (e.g. "push").
func ManagerConfig(ctx context.Context, admin *rest.Config, components ...string) (*rest.Config, error) {
	c, err := client.New(admin, client.Options{})
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ManagerNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", ManagerNamespace, err)
	}
	objs, err := kustomizationResources(filepath.Join(RepoRoot(), "config", "rbac"))
	if err != nil {
		return nil, err
	}
	for _, name := range components {
		more, err := objectsIn(filepath.Join(RepoRoot(), "config", name, "rbac.yaml"))
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	for _, u := range objs {
		if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("kiln-tests"), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	tr, err := cs.CoreV1().ServiceAccounts(ManagerNamespace).CreateToken(ctx, ManagerServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}},
		metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for %s/%s: %w", ManagerNamespace, ManagerServiceAccount, err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// kustomizationResources reads the objects of the files a plain kustomization.yaml lists.
func kustomizationResources(dir string) ([]*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, name := range k.Resources {
		more, err := objectsIn(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	return objs, nil
}

// objectsIn reads the objects of one YAML file.
func objectsIn(file string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// BindRBACTo applies config/rbac as an install would, but with every binding's subject
// replaced by ServiceAccount sa in the manager's namespace (and the binding renamed), so a
// test can ask what exactly the shipped roles allow, whatever else the shared manager's own
// ServiceAccount was given. It returns the user name the API server knows sa by.
func BindRBACTo(ctx context.Context, admin *rest.Config, sa string) (string, error) {
	c, err := client.New(admin, client.Options{})
	if err != nil {
		return "", err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ManagerNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating namespace %s: %w", ManagerNamespace, err)
	}
	objs, err := kustomizationResources(filepath.Join(RepoRoot(), "config", "rbac"))
	if err != nil {
		return "", err
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "ServiceAccount":
			u.SetName(sa)
		case "RoleBinding", "ClusterRoleBinding":
			u.SetName(u.GetName() + "-" + sa)
			u.Object["subjects"] = []any{map[string]any{"kind": "ServiceAccount", "name": sa, "namespace": ManagerNamespace}}
		}
		if err := c.Patch(ctx, u, client.Apply, client.FieldOwner("kiln-tests"), client.ForceOwnership); err != nil {
			return "", fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return "system:serviceaccount:" + ManagerNamespace + ":" + sa, nil
}
