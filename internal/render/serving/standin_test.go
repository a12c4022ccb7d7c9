package serving

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"kiln.dev/kiln/api/v1alpha1"
)

// The serving path for real: the rendered container's command, arguments and
// environment start a stand-in for the preset's server, which reads its port and
// model the way that server does (flags, environment, config file), and serves
// its health and predict paths. The test then probes it exactly as the rendered
// readiness probe says. A probe path, port or argument the renderer gets wrong
// for a preset fails here.

const (
	standinPreset = "KILN_STANDIN_PRESET"
	standinArgv   = "KILN_STANDIN_ARGV"
)

func TestMain(m *testing.M) {
	if preset := os.Getenv(standinPreset); preset != "" {
		var argv []string
		if err := json.Unmarshal([]byte(os.Getenv(standinArgv)), &argv); err != nil {
			fmt.Fprintln(os.Stderr, "stand-in:", err)
			os.Exit(2)
		}
		if err := standIn(preset, argv); err != nil {
			fmt.Fprintln(os.Stderr, "stand-in:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// standIn behaves like the preset's server as far as ports, paths and the model
// directory go. It refuses to start when the model directory is missing, as the
// real servers do.
func standIn(preset string, argv []string) error {
	flag := func(name string) string {
		for i, a := range argv {
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
			if a == name && i+1 < len(argv) {
				return argv[i+1]
			}
		}
		return ""
	}
	var port, ready, predict, modelDir string
	switch preset {
	case "mlserver": // mlserver start DIR; settings from MLSERVER_* variables
		if len(argv) < 3 || argv[0] != "mlserver" || argv[1] != "start" {
			return fmt.Errorf("want mlserver start DIR, got %q", argv)
		}
		modelDir, port = argv[2], os.Getenv("MLSERVER_HTTP_PORT")
		ready, predict = "/v2/health/ready", "/v2/models/"+os.Getenv("MLSERVER_MODEL_NAME")+"/infer"
	case "torchserve": // the port is in the --ts-config file
		modelDir = flag("--model-store")
		props, err := os.ReadFile(flag("--ts-config"))
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(string(props)))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "inference_address="); ok {
				_, port, _ = strings.Cut(strings.TrimPrefix(v, "http://"), ":")
			}
		}
		mars, _ := filepath.Glob(filepath.Join(modelDir, "*.mar"))
		if len(mars) == 0 {
			return fmt.Errorf("no .mar in %s", modelDir)
		}
		ready, predict = "/ping", "/predictions/"+strings.TrimSuffix(filepath.Base(mars[0]), ".mar")
	case "triton":
		modelDir, port = flag("--model-repository"), flag("--http-port")
		models, _ := os.ReadDir(modelDir)
		if len(models) == 0 {
			return fmt.Errorf("empty model repository %s", modelDir)
		}
		ready, predict = "/v2/health/ready", "/v2/models/"+models[0].Name()+"/infer"
	case "vllm": // the image's entrypoint is the OpenAI server; argv is its arguments
		modelDir, port = flag("--model"), flag("--port")
		ready, predict = "/health", "/v1/completions"
	default:
		return fmt.Errorf("no stand-in for %s", preset)
	}
	if st, err := os.Stat(modelDir); err != nil || !st.IsDir() {
		return fmt.Errorf("model directory %q: %v", modelDir, err)
	}
	if port == "" {
		return fmt.Errorf("%s: no port configured", preset)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ready, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("POST "+predict, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"outputs":[]}`) })
	return http.ListenAndServe("127.0.0.1:"+port, mux)
}

func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func TestPresetsServeWhereTheProbesLook(t *testing.T) {
	cfg := DefaultConfig()
	for _, preset := range cfg.PresetNames() {
		t.Run(preset, func(t *testing.T) {
			port := freePort(t)
			ms := &v1alpha1.ModelServer{}
			ms.Name, ms.Namespace = "iris", "ml"
			ms.Spec.Model = v1alpha1.ModelSource{URI: "pvc://models", Format: "sklearn"}
			ms.Spec.Runtime = v1alpha1.ServingRuntime{Preset: preset, Port: ptr.To(port)}
			objs, err := ModelServer(ms, Options{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			c := objs.Stable.Deployment.Spec.Template.Spec.Containers[0]

			// The volume mount, played by a directory laid out as the preset expects.
			model := t.TempDir()
			switch preset {
			case "torchserve":
				for _, f := range []string{"model-store/iris.mar", "config/config.properties"} {
					if err := os.MkdirAll(filepath.Join(model, filepath.Dir(f)), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				props := fmt.Sprintf("inference_address=http://0.0.0.0:%d\n", port)
				if err := os.WriteFile(filepath.Join(model, "config/config.properties"), []byte(props), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(model, "model-store/iris.mar"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			case "triton":
				if err := os.Mkdir(filepath.Join(model, "iris"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mounted := func(s string) string { return strings.ReplaceAll(s, ModelDir, model) }
			var argv []string
			for _, a := range append(append([]string{}, c.Command...), c.Args...) {
				argv = append(argv, mounted(a))
			}
			js, _ := json.Marshal(argv)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0])
			cmd.Env = []string{standinPreset + "=" + preset, standinArgv + "=" + string(js)}
			for _, e := range c.Env {
				cmd.Env = append(cmd.Env, e.Name+"="+mounted(e.Value))
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			// Probe as the kubelet would: the named port resolved through the container's ports.
			probe := c.ReadinessProbe.HTTPGet
			if probe == nil {
				t.Fatalf("preset %s renders no HTTP readiness probe", preset)
			}
			probePort := resolvePort(t, c, probe.Port.String())
			if probePort != port {
				t.Errorf("probe port %d, want the runtime's port %d", probePort, port)
			}
			base := fmt.Sprintf("http://127.0.0.1:%d", probePort)
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get(base + probe.Path)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
					err = fmt.Errorf("status %s", resp.Status)
				}
				select {
				case werr := <-exited:
					t.Fatalf("the server exited (%v) before %s answered: %s", werr, probe.Path, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("readiness probe %s%s: %v", base, probe.Path, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			predict, err := expand(cfg.Presets[preset].PredictPath, templateData{ModelName: ms.Name})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Post(base+predict, "application/json", strings.NewReader(`{"inputs":[]}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("POST %s: %s", predict, resp.Status)
			}
		})
	}
}

func resolvePort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("the probe's port %q is not a port of the container", name)
	return 0
}
