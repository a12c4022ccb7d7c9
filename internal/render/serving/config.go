package serving

import (
	_ "embed"
	"fmt"
	"maps"
	"slices"

	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/api/v1alpha1"
)

// ConfigMapName and ConfigKey locate the serving settings in Kiln's namespace.
const (
	ConfigMapName = "kiln-serving"
	ConfigKey     = "serving.yaml"
)

// defaultConfig is the one copy of the defaults: config/manager ships it as the
// kiln-serving ConfigMap, and a test checks that the two are the same text.
//
//go:embed serving.yaml
var defaultConfig []byte

// DefaultConfigYAML is the built-in serving.yaml.
func DefaultConfigYAML() []byte { return slices.Clone(defaultConfig) }

// Config is serving.yaml: the runtime presets and the download step's image.
type Config struct {
	// FetchImage downloads object-storage models; see serving.yaml.
	FetchImage string `json:"fetchImage"`
	// Presets by name.
	Presets map[string]Preset `json:"presets"`
}

// Preset is a model server Kiln knows how to run.
type Preset struct {
	Image         string                   `json:"image"`
	Command       []string                 `json:"command,omitempty"`
	Args          []string                 `json:"args,omitempty"`
	Env           map[string]string        `json:"env,omitempty"`
	Port          int32                    `json:"port"`
	Protocol      v1alpha1.ServingProtocol `json:"protocol,omitempty"`
	ReadinessPath string                   `json:"readinessPath,omitempty"`
	// PredictPath is where requests go; informational, for people and tests.
	PredictPath string `json:"predictPath,omitempty"`
	// Formats the preset serves; informational.
	Formats []string `json:"formats,omitempty"`
}

// DefaultConfig parses the built-in serving.yaml.
func DefaultConfig() Config {
	c, err := ParseConfig(defaultConfig)
	if err != nil {
		panic(fmt.Sprintf("built-in serving.yaml: %v", err)) // a test keeps this from happening
	}
	return c
}

// ParseConfig reads serving.yaml strictly, so a misspelt key is an error the
// administrator sees rather than a setting silently ignored.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("parsing %s: %w", ConfigKey, err)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Presets)) {
		p := c.Presets[name]
		if p.Image == "" || p.Port < 1 || p.Port > 65535 {
			return Config{}, fmt.Errorf("%s: preset %q needs an image and a port between 1 and 65535", ConfigKey, name)
		}
		switch p.Protocol {
		case "", v1alpha1.ProtocolHTTP, v1alpha1.ProtocolGRPC:
		default:
			return Config{}, fmt.Errorf("%s: preset %q: protocol must be HTTP or GRPC", ConfigKey, name)
		}
	}
	return c, nil
}

// PresetNames lists the presets, sorted.
func (c Config) PresetNames() []string { return slices.Sorted(maps.Keys(c.Presets)) }
