package cli

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/api/v1alpha1"
)

// kindInfo is one Kiln kind as every verb names it: the one place that knows which kinds
// exist, what a user may type for each, and how to make its objects.
type kindInfo struct {
	Kind     string // TrainingJob
	Plural   string // trainingjobs: the canonical name verbs pass around
	Singular string
	Short    string
	New      func() client.Object
	NewList  func() client.ObjectList
	// Table prints objects of this kind as get's table; Empty says what get prints when
	// there are none, and how to make one.
	Table func(io.Writer, []client.Object, tableOptions) error
	Empty string
}

// kindRegistry lists the kinds in the order get prints them.
var kindRegistry = []kindInfo{{
	Kind: "TrainingJob", Plural: "trainingjobs", Singular: "trainingjob", Short: "tj",
	New:     func() client.Object { return &v1alpha1.TrainingJob{} },
	NewList: func() client.ObjectList { return &v1alpha1.TrainingJobList{} },
	Table:   trainingJobTable,
	Empty:   "No TrainingJobs found. Start one with: kubectl kiln train --image IMAGE -- COMMAND",
}, {
	Kind: "Sweep", Plural: "sweeps", Singular: "sweep", Short: "sw",
	New:     func() client.Object { return &v1alpha1.Sweep{} },
	NewList: func() client.ObjectList { return &v1alpha1.SweepList{} },
	Table:   sweepTable,
	Empty:   "No Sweeps found. Start one with: kubectl kiln sweep -f FILE",
}, {
	Kind: "ModelServer", Plural: "modelservers", Singular: "modelserver", Short: "ms",
	New:     func() client.Object { return &v1alpha1.ModelServer{} },
	NewList: func() client.ObjectList { return &v1alpha1.ModelServerList{} },
	Table:   modelServerTable,
	Empty:   "No ModelServers found. Start one with: kubectl kiln serve NAME --model URI --preset PRESET",
}, {
	Kind: "Notebook", Plural: "notebooks", Singular: "notebook", Short: "nb",
	New:     func() client.Object { return &v1alpha1.Notebook{} },
	NewList: func() client.ObjectList { return &v1alpha1.NotebookList{} },
	Table:   notebookTable,
	Empty:   "No Notebooks found. Create one with: kubectl kiln notebook create NAME --gpus 1 --idle-timeout 1h",
}}

// lookupKind finds the kind a user typed: plural, singular, short name, or the full
// resource name (trainingjobs.kiln.dev), in any case.
func lookupKind(s string) (kindInfo, bool) {
	s = strings.ToLower(s)
	s = strings.TrimSuffix(s, "."+v1alpha1.GroupVersion.Group)
	for _, k := range kindRegistry {
		if s == k.Plural || s == k.Singular || s == k.Short || s == strings.ToLower(k.Kind) {
			return k, true
		}
	}
	return kindInfo{}, false
}

// kindOf is the registry entry of a canonical plural.
func kindOf(plural string) kindInfo {
	k, ok := lookupKind(plural)
	if !ok {
		panic("kiln: no kind " + plural)
	}
	return k
}

func kindNames() string {
	names := make([]string, len(kindRegistry))
	for i, k := range kindRegistry {
		names[i] = fmt.Sprintf("%s (%s)", k.Plural, k.Short)
	}
	return strings.Join(names, ", ")
}

func resolveKind(s string) (string, error) {
	if k, ok := lookupKind(s); ok {
		return k.Plural, nil
	}
	return "", fmt.Errorf("unknown kind %q: Kiln's kinds are %s", s, kindNames())
}

// kindOfObject is the registry entry of a typed Kiln object.
func kindOfObject(obj client.Object) kindInfo {
	for _, k := range kindRegistry {
		if reflect.TypeOf(k.New()) == reflect.TypeOf(obj) {
			return k
		}
	}
	panic(fmt.Sprintf("kiln: %T is no Kiln kind", obj))
}
