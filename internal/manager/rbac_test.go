package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Kiln's roles name every verb and resource they use: a wildcard would hand the manager
// whatever a future Kubernetes release adds, and the privilege-granting verbs would let it
// raise its own rights.
func TestRolesHoldNoWildcardsOrPrivilegeVerbs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	roles := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var doc json.RawMessage
			if err := d.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			var r rbacv1.ClusterRole // a Role has the same shape
			if json.Unmarshal(doc, &r) != nil {
				continue // not an object: a kustomize JSON patch
			}
			if r.Kind != "Role" && r.Kind != "ClusterRole" {
				continue
			}
			roles++
			for i, rule := range r.Rules {
				for field, values := range map[string][]string{
					"apiGroups": rule.APIGroups, "resources": rule.Resources, "verbs": rule.Verbs,
					"resourceNames": rule.ResourceNames, "nonResourceURLs": rule.NonResourceURLs,
				} {
					if slices.Contains(values, "*") {
						t.Errorf("%s: %s %s rule %d has a wildcard in %s", file, r.Kind, r.Name, i, field)
					}
				}
				for _, verb := range []string{"escalate", "bind", "impersonate"} {
					if slices.Contains(rule.Verbs, verb) {
						t.Errorf("%s: %s %s rule %d grants %q", file, r.Kind, r.Name, i, verb)
					}
				}
			}
		}
	}
	if roles < 3 {
		t.Fatalf("found %d roles under config/; the manifests moved?", roles)
	}
}

// allowedPermissions is every permission Kiln's roles under config/rbac grant, one line per
// role, resource and verb. A permission not on it fails TestRolesGrantOnlyAllowedPermissions:
// adding one is a decision, to be made here, on purpose, next to the reason. The lines read
// "Kind name[@namespace]: group/resource[/name] verb" (core group "").
var allowedPermissions = []string{
	// The controllers: Kiln's own kinds.
	"ClusterRole kiln-manager: kiln.dev/trainingjobs create",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs delete",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs get",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs list",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs patch",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs watch",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs/status patch",
	"ClusterRole kiln-manager: kiln.dev/trainingjobs/finalizers update",
	"ClusterRole kiln-manager: kiln.dev/sweeps list",
	"ClusterRole kiln-manager: kiln.dev/sweeps watch",
	"ClusterRole kiln-manager: kiln.dev/sweeps/status patch",
	"ClusterRole kiln-manager: kiln.dev/sweeps/finalizers update",
	"ClusterRole kiln-manager: kiln.dev/modelservers get",
	"ClusterRole kiln-manager: kiln.dev/modelservers list",
	"ClusterRole kiln-manager: kiln.dev/modelservers patch",
	"ClusterRole kiln-manager: kiln.dev/modelservers watch",
	"ClusterRole kiln-manager: kiln.dev/modelservers/status patch",
	"ClusterRole kiln-manager: kiln.dev/modelservers/finalizers update",
	"ClusterRole kiln-manager: kiln.dev/notebooks list",
	"ClusterRole kiln-manager: kiln.dev/notebooks patch",
	"ClusterRole kiln-manager: kiln.dev/notebooks watch",
	"ClusterRole kiln-manager: kiln.dev/notebooks/status patch",
	"ClusterRole kiln-manager: kiln.dev/notebooks/finalizers update",
	// What Kiln objects render to, in the tenants' namespaces.
	"ClusterRole kiln-manager: batch/jobs create",
	"ClusterRole kiln-manager: batch/jobs delete",
	"ClusterRole kiln-manager: batch/jobs get",
	"ClusterRole kiln-manager: batch/jobs list",
	"ClusterRole kiln-manager: batch/jobs patch",
	"ClusterRole kiln-manager: batch/jobs watch",
	"ClusterRole kiln-manager: /services create",
	"ClusterRole kiln-manager: /services delete",
	"ClusterRole kiln-manager: /services list",
	"ClusterRole kiln-manager: /services patch",
	"ClusterRole kiln-manager: /services watch",
	"ClusterRole kiln-manager: /configmaps create",
	"ClusterRole kiln-manager: /configmaps delete",
	"ClusterRole kiln-manager: /configmaps list",
	"ClusterRole kiln-manager: /configmaps watch",
	"ClusterRole kiln-manager: /persistentvolumeclaims create",
	"ClusterRole kiln-manager: /persistentvolumeclaims list",
	"ClusterRole kiln-manager: /persistentvolumeclaims watch",
	"ClusterRole kiln-manager: apps/deployments create",
	"ClusterRole kiln-manager: apps/deployments delete",
	"ClusterRole kiln-manager: apps/deployments list",
	"ClusterRole kiln-manager: apps/deployments patch",
	"ClusterRole kiln-manager: apps/deployments watch",
	"ClusterRole kiln-manager: apps/statefulsets create",
	"ClusterRole kiln-manager: apps/statefulsets list",
	"ClusterRole kiln-manager: apps/statefulsets patch",
	"ClusterRole kiln-manager: apps/statefulsets watch",
	"ClusterRole kiln-manager: autoscaling/horizontalpodautoscalers create",
	"ClusterRole kiln-manager: autoscaling/horizontalpodautoscalers delete",
	"ClusterRole kiln-manager: autoscaling/horizontalpodautoscalers list",
	"ClusterRole kiln-manager: autoscaling/horizontalpodautoscalers patch",
	"ClusterRole kiln-manager: autoscaling/horizontalpodautoscalers watch",
	"ClusterRole kiln-manager: policy/poddisruptionbudgets create",
	"ClusterRole kiln-manager: policy/poddisruptionbudgets delete",
	"ClusterRole kiln-manager: policy/poddisruptionbudgets list",
	"ClusterRole kiln-manager: policy/poddisruptionbudgets patch",
	"ClusterRole kiln-manager: policy/poddisruptionbudgets watch",
	// get: a canary's HTTPRoute is read before it is changed.
	"ClusterRole kiln-manager: gateway.networking.k8s.io/httproutes get",
	"ClusterRole kiln-manager: gateway.networking.k8s.io/httproutes create",
	"ClusterRole kiln-manager: gateway.networking.k8s.io/httproutes delete",
	"ClusterRole kiln-manager: gateway.networking.k8s.io/httproutes list",
	"ClusterRole kiln-manager: gateway.networking.k8s.io/httproutes patch",
	// Secrets Kiln makes (MPI keys, notebook and trial tokens) are created, never read.
	"ClusterRole kiln-manager: /secrets create",
	// Cluster facts: shapes, gang admission, injection scope, storage warnings.
	"ClusterRole kiln-manager: /nodes list",
	"ClusterRole kiln-manager: /nodes watch",
	"ClusterRole kiln-manager: /namespaces list",
	"ClusterRole kiln-manager: /namespaces watch",
	"ClusterRole kiln-manager: /pods list",
	"ClusterRole kiln-manager: /pods watch",
	"ClusterRole kiln-manager: scheduling.k8s.io/priorityclasses list",
	"ClusterRole kiln-manager: scheduling.k8s.io/priorityclasses watch",
	// The nvidia RuntimeClass, set on GPU pods where the cluster has one.
	"ClusterRole kiln-manager: node.k8s.io/runtimeclasses list",
	"ClusterRole kiln-manager: node.k8s.io/runtimeclasses watch",
	"ClusterRole kiln-manager: storage.k8s.io/storageclasses list",
	"ClusterRole kiln-manager: storage.k8s.io/storageclasses watch",
	// Trials' kiln-metric lines and rank 0's last checkpoint are in pod logs. RBAC cannot
	// narrow a subresource by label or owner, and pod names are not known in advance.
	"ClusterRole kiln-manager: /pods/log get",
	"ClusterRole kiln-manager: /events create",
	"ClusterRole kiln-manager: /events patch",
	"ClusterRole kiln-manager: events.k8s.io/events create",
	"ClusterRole kiln-manager: events.k8s.io/events patch",
	// The CA goes into Kiln's own two webhook configurations, by name.
	"ClusterRole kiln-manager: admissionregistration.k8s.io/mutatingwebhookconfigurations/kiln-mutating-webhooks get",
	"ClusterRole kiln-manager: admissionregistration.k8s.io/mutatingwebhookconfigurations/kiln-mutating-webhooks patch",
	"ClusterRole kiln-manager: admissionregistration.k8s.io/validatingwebhookconfigurations/kiln-validating-webhooks get",
	"ClusterRole kiln-manager: admissionregistration.k8s.io/validatingwebhookconfigurations/kiln-validating-webhooks patch",
	// Kiln's namespace: its two Secrets by name, and creating them the first time.
	"Role kiln-manager@kiln-system: /secrets create",
	"Role kiln-manager@kiln-system: /secrets/kiln-webhook-cert get",
	"Role kiln-manager@kiln-system: /secrets/kiln-webhook-cert update",
	"Role kiln-manager@kiln-system: /secrets/kiln-token-key get",
	"Role kiln-leader-election@kiln-system: coordination.k8s.io/leases create",
	"Role kiln-leader-election@kiln-system: coordination.k8s.io/leases get",
	"Role kiln-leader-election@kiln-system: coordination.k8s.io/leases update",
	"Role kiln-leader-election@kiln-system: /events create",
	"Role kiln-leader-election@kiln-system: /events patch",
	// Authenticated, authorised metrics.
	"ClusterRole kiln-metrics-auth: authentication.k8s.io/tokenreviews create",
	"ClusterRole kiln-metrics-auth: authorization.k8s.io/subjectaccessreviews create",
	"ClusterRole kiln-metrics-reader: /metrics get",
	// Only with push turned on (config/push): its deliveries' webhook Secrets,
	// read by name in the target's namespace. RBAC cannot narrow get to tenant-chosen names.
	"ClusterRole kiln-push: /secrets get",
}

// aggregatedPermissions are what kiln-edit and kiln-view hand to namespace users; they are
// checked the same way, built from the four kinds so the list stays readable.
func aggregatedPermissions() []string {
	var out []string
	for _, kind := range []string{"trainingjobs", "sweeps", "modelservers", "notebooks"} {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"} {
			out = append(out, "ClusterRole kiln-edit: kiln.dev/"+kind+" "+verb)
		}
		for _, verb := range []string{"get", "list", "watch"} {
			out = append(out, "ClusterRole kiln-edit: kiln.dev/"+kind+"/status "+verb,
				"ClusterRole kiln-view: kiln.dev/"+kind+" "+verb, "ClusterRole kiln-view: kiln.dev/"+kind+"/status "+verb)
		}
	}
	return out
}

// Every permission Kiln's roles grant is one someone put on the allow-list on purpose.
func TestRolesGrantOnlyAllowedPermissions(t *testing.T) {
	allowed := map[string]bool{}
	for _, p := range append(slices.Clone(allowedPermissions), aggregatedPermissions()...) {
		allowed[p] = true
	}
	granted := map[string]bool{}
	for _, file := range []string{"rbac/role.yaml", "rbac/leader_election_role.yaml", "rbac/metrics_auth_role.yaml",
		"rbac/aggregate_roles.yaml", "push/rbac.yaml"} {
		for _, p := range permissions(t, filepath.Join("..", "..", "config", file)) {
			granted[p] = true
			if !allowed[p] {
				t.Errorf("%s grants %q, which is not in allowedPermissions: add it there with the reason, or drop it", file, p)
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(allowed)) {
		if !granted[p] {
			t.Errorf("allowedPermissions lists %q, which no role grants any more: remove it", p)
		}
	}
}

// permissions flattens the Roles and ClusterRoles of a file into allow-list lines.
func permissions(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var r struct {
			Kind     string              `json:"kind"`
			Metadata metav1.ObjectMeta   `json:"metadata"`
			Rules    []rbacv1.PolicyRule `json:"rules"`
		}
		if err := d.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if r.Kind != "Role" && r.Kind != "ClusterRole" {
			continue
		}
		who := r.Kind + " " + r.Metadata.Name
		if r.Metadata.Namespace != "" {
			who += "@" + r.Metadata.Namespace
		}
		for _, rule := range r.Rules {
			for _, verb := range rule.Verbs {
				for _, url := range rule.NonResourceURLs {
					out = append(out, fmt.Sprintf("%s: %s %s", who, url, verb))
				}
				for _, group := range rule.APIGroups {
					for _, res := range rule.Resources {
						if len(rule.ResourceNames) == 0 {
							out = append(out, fmt.Sprintf("%s: %s/%s %s", who, group, res, verb))
						}
						for _, name := range rule.ResourceNames {
							out = append(out, fmt.Sprintf("%s: %s/%s/%s %s", who, group, res, name, verb))
						}
					}
				}
			}
		}
	}
	return out
}
