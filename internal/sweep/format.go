package sweep

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// EnvName is the environment variable a trial receives parameter name in: KILN_PARAM_ and
// the name in upper case ("lr" → "KILN_PARAM_LR").
func EnvName(name string) string { return "KILN_PARAM_" + strings.ToUpper(name) }

// Placeholder is how a TrainingJob template refers to parameter name: "${params.lr}".
func Placeholder(name string) string { return "${params." + name + "}" }

// FormatValue renders one value of p as a trial sees it: an Int without decimals, a Float in
// the shortest form that parses back to the same number, a Categorical as its value.
func FormatValue(p Param, v float64) (string, error) {
	switch p.Type {
	case Int:
		return strconv.FormatInt(int64(math.Round(v)), 10), nil
	case Float:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case Categorical:
		i := int(v)
		if float64(i) != v || i < 0 || i >= len(p.Values) {
			return "", fmt.Errorf("parameter %s: %v is not the index of one of its %d values", p.Name, v, len(p.Values))
		}
		return p.Values[i], nil
	}
	return "", fmt.Errorf("parameter %s: unknown type %q", p.Name, p.Type)
}

// ParseValue is the inverse of FormatValue.
func ParseValue(p Param, s string) (float64, error) {
	switch p.Type {
	case Int:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: %q is not an integer: %w", p.Name, s, err)
		}
		return float64(i), nil
	case Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: %q is not a number: %w", p.Name, s, err)
		}
		return f, nil
	case Categorical:
		for i, v := range p.Values {
			if v == s {
				return float64(i), nil
			}
		}
		return 0, fmt.Errorf("parameter %s: %q is not one of its values %q", p.Name, s, p.Values)
	}
	return 0, fmt.Errorf("parameter %s: unknown type %q", p.Name, p.Type)
}

// Format renders every parameter of a, by name.
func (s Space) Format(a Assignment) (map[string]string, error) {
	out := make(map[string]string, len(s))
	for _, p := range s {
		v, ok := a[p.Name]
		if !ok {
			return nil, fmt.Errorf("parameter %s has no value", p.Name)
		}
		str, err := FormatValue(p, v)
		if err != nil {
			return nil, err
		}
		out[p.Name] = str
	}
	return out, nil
}

// Parse reads back what Format rendered. Every parameter of the space must be there, and
// nothing else.
func (s Space) Parse(values map[string]string) (Assignment, error) {
	a := make(Assignment, len(s))
	for _, p := range s {
		str, ok := values[p.Name]
		if !ok {
			return nil, fmt.Errorf("parameter %s has no value", p.Name)
		}
		v, err := ParseValue(p, str)
		if err != nil {
			return nil, err
		}
		a[p.Name] = v
	}
	if len(values) != len(s) {
		for name := range values {
			if _, ok := a[name]; !ok {
				return nil, fmt.Errorf("%s is not a parameter of the search space", name)
			}
		}
	}
	return a, nil
}

// key identifies an assignment, for telling whether a grid point was tried already.
func (s Space) key(a Assignment) string {
	var b strings.Builder
	for _, p := range s {
		str, _ := FormatValue(p, a[p.Name])
		b.WriteString(str)
		b.WriteByte(0)
	}
	return b.String()
}
