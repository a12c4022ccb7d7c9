package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/test/framework"
)

// doctorClaims are the ✓ lines doctor may print, each a fact some Kiln code acts on.
// A ✓ line matching none of them claims something unchecked; integrations add theirs
// only when installed.
var doctorClaims = []*regexp.Regexp{
	regexp.MustCompile(`^✓ Kubernetes v\S+$`),
	regexp.MustCompile(`^✓ Kiln's API \(kiln\.dev/v1alpha1\) is installed$`),
	regexp.MustCompile(`^✓ \d+ GPU\(s\) on \d+ node shape\(s\): `),
	regexp.MustCompile(`^✓ GPU models: `),
	regexp.MustCompile(`^✓ CUDA driver major versions: `),
	regexp.MustCompile(`^✓ device plugin DaemonSet `),
	regexp.MustCompile(`^✓ ReadWriteMany storage: `),
}

// integrationCRD is one optional integration as doctor finds it: by a CRD of its group.
type integrationCRD struct {
	name  string
	crd   func(t *testing.T) *apiextensionsv1.CustomResourceDefinition
	claim *regexp.Regexp // its ✓ line when Kiln uses it, nil when Kiln does not
}

var integrationCRDs = []integrationCRD{
	{"Kueue", minimalCRD("kueue.x-k8s.io", "ClusterQueue", "clusterqueues"), regexp.MustCompile(`^✓ Kueue detected: spec\.queueName`)},
	{"Gateway API", gatewayHTTPRouteCRD, regexp.MustCompile(`^✓ Gateway API HTTPRoutes served: `)},
	{"KEDA", minimalCRD("keda.sh", "ScaledObject", "scaledobjects"), nil},
	{"cert-manager", minimalCRD("cert-manager.io", "Certificate", "certificates"), nil},
	{"ProvisioningRequest", minimalCRD("autoscaling.x-k8s.io", "ProvisioningRequest", "provisioningrequests"), nil},
}

// checkDoctor fails on every line of out that claims a feature that is not there,
// given which integrations are installed.
func checkDoctor(t *testing.T, out string, installed map[string]bool) {
	t.Helper()
	claims := append([]*regexp.Regexp{}, doctorClaims...)
	for _, in := range integrationCRDs {
		if installed[in.name] && in.claim != nil {
			claims = append(claims, in.claim)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "RuntimeClass") {
			t.Errorf("no plane here has a RuntimeClass, yet doctor mentions one: %q", line)
		}
		if strings.HasPrefix(line, "✓") && !matchesAny(claims, line) {
			t.Errorf("✓ line claims something not installed or not acted on: %q", line)
		}
	}
	for _, in := range integrationCRDs {
		var want string
		switch {
		case installed[in.name] && in.claim == nil:
			want = "- " + in.name + " ("
		case !installed[in.name] && in.claim != nil:
			want = "- " + in.name + " "
			if !regexp.MustCompile(`(?m)^- ` + regexp.QuoteMeta(in.name) + ` .*not (installed|served)`).MatchString(out) {
				t.Errorf("%s is not installed, yet doctor does not say so:\n%s", in.name, out)
			}
		}
		mentions := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, in.name) {
				mentions++
				if in.claim == nil && !strings.HasSuffix(line, "present; Kiln does not use it yet") {
					t.Errorf("%s is used by no Kiln code, yet doctor says: %q", in.name, line)
				}
			}
		}
		if want != "" && !strings.Contains(out, want) {
			t.Errorf("installed=%v: doctor lacks a line starting %q:\n%s", installed[in.name], want, out)
		}
		if in.claim == nil && !installed[in.name] && mentions > 0 {
			t.Errorf("%s is not installed and unused, yet doctor mentions it:\n%s", in.name, out)
		}
	}
}

func matchesAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// The whole of doctor's output on the shared plane (GPU pools, no integrations), then on a
// bare plane with the integrations added one at a time, so each is seen absent and present.
func TestCLIDoctorClaimsOnlyWhatIsThere(t *testing.T) {
	k := buildKiln(t)
	kubeconfig := planeKubeconfig(t)
	out, err := k.run(t, "--kubeconfig="+kubeconfig, "doctor")
	if err != nil {
		t.Fatalf("doctor on the shared plane: %v\n%s", err, out)
	}
	checkDoctor(t, out, nil)

	ctx := context.Background()
	bare, err := framework.Start(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(bare.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	installed := map[string]bool{}
	for i := 0; i <= len(integrationCRDs); i++ {
		if i > 0 {
			in := integrationCRDs[i-1]
			crd := in.crd(t)
			if err := c.Create(ctx, crd); err != nil {
				t.Fatalf("installing %s: %v", in.name, err)
			}
			framework.Eventually(t, timeout, func() error { return established(ctx, c, crd.Name) })
			installed[in.name] = true
		}
		t.Run(fmt.Sprintf("%d-integrations", i), func(t *testing.T) {
			out, _ := k.run(t, "--kubeconfig="+bare.KubeConfigPath, "doctor") // fails: no GPU nodes
			checkDoctor(t, out, installed)
		})
	}
}

func established(ctx context.Context, c client.Client, name string) error {
	got := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, got); err != nil {
		return err
	}
	for _, cond := range got.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("CRD %s not established yet", name)
}

// minimalCRD stands in for an integration doctor recognises by API group alone.
func minimalCRD(group, kind, plural string) func(*testing.T) *apiextensionsv1.CustomResourceDefinition {
	return func(*testing.T) *apiextensionsv1.CustomResourceDefinition {
		return &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: group,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
				Scope: apiextensionsv1.ClusterScoped,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
			},
		}
	}
}

// gatewayHTTPRouteCRD is the real HTTPRoute CRD of the gateway-api module.
func gatewayHTTPRouteCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("finding the gateway-api module: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}
