package admission

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// placeOn requires the pods of a template to run on one of the given nodes,
// the user's own required node affinity still applying. A node-name field
// selector takes a single name, so each of the user's terms (terms are
// alternatives) becomes one term per node. Node names from an earlier
// admission of the same Job are replaced, not narrowed further. The rendered
// topology spread then puts one worker on each node.
//
// A suspended Job that has not started may change its template's node
// affinity, so this goes into the same patch that releases the Job: its pods
// are created already bound for the chosen nodes.
func placeOn(spec *corev1.PodSpec, nodes []string) {
	nodes = slices.Compact(slices.Sorted(slices.Values(nodes)))
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := spec.Affinity.NodeAffinity
	var own []corev1.NodeSelectorTerm
	if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
		for _, t := range req.NodeSelectorTerms {
			t.MatchFields = slices.DeleteFunc(slices.Clone(t.MatchFields), func(r corev1.NodeSelectorRequirement) bool {
				return r.Key == nodeNameField
			})
			if len(t.MatchFields) == 0 {
				t.MatchFields = nil
			}
			if !slices.ContainsFunc(own, func(o corev1.NodeSelectorTerm) bool { return equality.Semantic.DeepEqual(o, t) }) {
				own = append(own, t)
			}
		}
	}
	if len(own) == 0 {
		own = []corev1.NodeSelectorTerm{{}}
	}
	terms := make([]corev1.NodeSelectorTerm, 0, len(own)*len(nodes))
	for _, t := range own {
		for _, n := range nodes {
			term := *t.DeepCopy()
			term.MatchFields = append(term.MatchFields, corev1.NodeSelectorRequirement{Key: nodeNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{n}})
			terms = append(terms, term)
		}
	}
	na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: terms}
}

// nodeNameField is the one field node affinity can match.
const nodeNameField = "metadata.name"
