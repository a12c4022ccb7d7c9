package notebook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/render"
)

// Activity is what a notebook server says about its use.
type Activity struct {
	// Last is the server's last_activity: the latest request, kernel message or
	// terminal input it saw.
	Last time.Time
	// Busy is true while a kernel executes code. A long cell with no output
	// leaves Last behind, but is work nobody wants culled.
	Busy bool
}

// ActivitySource reads a notebook server's activity. An error means the activity
// is unknown, and an unknown activity never culls.
type ActivitySource interface {
	Activity(ctx context.Context, nb *v1alpha1.Notebook, token string) (Activity, error)
}

// JupyterStatus reads Jupyter Server's REST API: GET /api/status
// ({"started", "last_activity", "connections", "kernels"}) and, when kernels run,
// GET /api/kernels for their execution_state. Both take the notebook's token.
// Neither request counts as activity to the server itself.
type JupyterStatus struct {
	// HTTPClient makes the requests; nil means one with a 5 s timeout.
	HTTPClient *http.Client
	// BaseURL is where the server is reached; nil means through the Notebook's
	// Service, which needs the manager to run inside the cluster.
	BaseURL func(nb *v1alpha1.Notebook) string
}

// jupyterStatus is the body of GET /api/status.
type jupyterStatus struct {
	Started      *time.Time `json:"started"`
	LastActivity *time.Time `json:"last_activity"`
	Connections  int        `json:"connections"`
	Kernels      int        `json:"kernels"`
}

// jupyterKernel is one element of GET /api/kernels.
type jupyterKernel struct {
	ExecutionState string `json:"execution_state"`
}

// Activity implements ActivitySource.
func (j *JupyterStatus) Activity(ctx context.Context, nb *v1alpha1.Notebook, token string) (Activity, error) {
	base := fmt.Sprintf("http://%s.%s.svc:%d", nb.Name, nb.Namespace, render.NotebookServicePort)
	if j.BaseURL != nil {
		base = j.BaseURL(nb)
	}
	var status jupyterStatus
	if err := j.get(ctx, base+"/api/status", token, &status); err != nil {
		return Activity{}, err
	}
	if status.LastActivity == nil {
		return Activity{}, errors.New("GET /api/status: the answer has no last_activity")
	}
	a := Activity{Last: *status.LastActivity}
	if status.Kernels > 0 {
		var kernels []jupyterKernel
		if err := j.get(ctx, base+"/api/kernels", token, &kernels); err != nil {
			return Activity{}, err
		}
		for _, k := range kernels {
			a.Busy = a.Busy || k.ExecutionState == "busy"
		}
	}
	return a, nil
}

func (j *JupyterStatus) get(ctx context.Context, url, token string, into any) error {
	c := j.HTTPClient
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// In a header, not the query, so that no access log records the token.
	req.Header.Set("Authorization", "token "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("GET %s: the server refused the notebook's token (%s)", req.URL.Path, resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET %s: not found; the image does not serve Jupyter's REST API", req.URL.Path)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: not Jupyter's answer: %w", req.URL.Path, err)
	}
	return nil
}
