// A model server in one file: it answers predictions of the line the trainer example fits,
// reading the model from KILN_MODEL_DIR, and listens on KILN_PORT (default 8080).
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

type model struct{ W, B float64 }

func main() {
	m := model{W: 2, B: 1}
	if b, err := os.ReadFile(filepath.Join(os.Getenv("KILN_MODEL_DIR"), "model.json")); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			log.Fatalf("model.json: %v", err)
		}
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	http.HandleFunc("/predict", func(w http.ResponseWriter, r *http.Request) {
		x, err := strconv.ParseFloat(r.URL.Query().Get("x"), 64)
		if err != nil {
			http.Error(w, "want ?x=NUMBER", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]float64{"y": m.W*x + m.B})
	})
	port := os.Getenv("KILN_PORT")
	if port == "" {
		port = "8080"
	}
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
