package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// emptyCluster is a cluster with no nodes, namespaces or StorageClasses: the fuzz test is
// about decoding, and a stub reader keeps it free of any server.
type emptyCluster struct{}

func (emptyCluster) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return apierrors.NewNotFound(schema.GroupResource{}, "")
}

func (emptyCluster) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// FuzzAdmissionReview sends arbitrary bytes as the body of an AdmissionReview to every
// webhook handler. The API server is not the only caller a webhook port may see (the
// port is reachable from pods unless a NetworkPolicy says otherwise), so whatever
// arrives must neither panic nor hang the handler, and every answer is either a
// well-formed AdmissionReview with a response or a 4xx.
func FuzzAdmissionReview(f *testing.F) {
	handlers, err := Handlers(testScheme(f), Cluster{Cached: emptyCluster{}, Live: emptyCluster{}}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range handlers {
			if !yield(p) {
				return
			}
		}
	})
	review := func(op, kind, object string) []byte {
		return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"` + op +
			`","kind":{"group":"kiln.dev","version":"v1alpha1","kind":"` + kind + `"},"namespace":"team-a","object":` + object + `,"oldObject":` + object + `}}`)
	}
	tj := `{"apiVersion":"kiln.dev/v1alpha1","kind":"TrainingJob","metadata":{"name":"t","namespace":"team-a","generation":2},` +
		`"spec":{"image":"busybox","resources":{"gpus":8},"data":[{"name":"d","uri":"pvc://c/x"}]}}`
	for i := range paths {
		f.Add(uint8(i), review("CREATE", "TrainingJob", tj))
		f.Add(uint8(i), review("UPDATE", "TrainingJob", tj))
	}
	f.Add(uint8(0), review("CREATE", "Pod", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}`))
	f.Add(uint8(1), []byte(`{"request":null}`))
	f.Add(uint8(2), []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","object":[1,2]}}`))
	f.Add(uint8(3), []byte(`not json`))
	f.Add(uint8(4), []byte{})

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handlers[path].ServeHTTP(rec, req)
		if rec.Code >= 400 && rec.Code < 500 {
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("%s answered HTTP %d to %q", path, rec.Code, body)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s answered a body that is no AdmissionReview (%v): %s", path, err, rec.Body.String())
		}
		if out.Response == nil {
			t.Fatalf("%s answered an AdmissionReview without a response: %s", path, rec.Body.String())
		}
		if !out.Response.Allowed && out.Response.Result == nil {
			t.Fatalf("%s refused without saying why: %s", path, rec.Body.String())
		}
		if out.Response.Result != nil && strings.Contains(out.Response.Result.Message, "panic") {
			t.Fatalf("%s recovered from a panic on %q: %s", path, body, out.Response.Result.Message)
		}
	})
}
