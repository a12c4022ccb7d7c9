// Command probe is the node tests' workload: one small static binary, packed as an image, that
// plays every part a test needs (server, client, DNS lookup, in-cluster API caller, volume
// writer). Each subcommand exits 0 on success and prints what it saw.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe echo|serve|files|get|indexed|whoami|share|resume ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "echo":
		fmt.Println(args)
	case "serve": // serve ADDR: answer every request with the pod's name, forever
		serve(args[0], nil)
	case "files": // files DIR ADDR: serve DIR's files, forever
		srv := &http.Server{Addr: args[1], Handler: http.FileServer(http.Dir(args[0])), ReadHeaderTimeout: 10 * time.Second}
		fail(srv.ListenAndServe().Error())
	case "get": // get URL: retry until it answers 200, print the body
		fmt.Println(get(args[0], 90*time.Second))
	case "indexed": // indexed URL: index 0 serves one request and exits, others get URL
		if os.Getenv("JOB_COMPLETION_INDEX") == "0" {
			done := make(chan struct{})
			go serve(":8080", done)
			<-done
			time.Sleep(500 * time.Millisecond) // let the answer leave before the pod ends
			return
		}
		fmt.Println("rank 1 got:", get(args[0], 90*time.Second))
	case "whoami":
		whoami()
	case "share": // share DIR MINE THEIRS: write MINE, wait for THEIRS
		write := filepath.Join(args[0], args[1])
		if err := os.WriteFile(write, []byte(args[1]), 0o644); err != nil {
			fail(err.Error())
		}
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if b, err := os.ReadFile(filepath.Join(args[0], args[2])); err == nil {
				fmt.Printf("wrote %s, read %s\n", args[1], b)
				return
			}
			if time.Now().After(deadline) {
				fail("no " + args[2])
			}
		}
	case "resume": // resume FILE...: print the files; fail after a checkpoint unless resumed from one
		resume(args)
	default:
		fail("unknown subcommand " + os.Args[1])
	}
}

func serve(addr string, served chan struct{}) {
	name, _ := os.Hostname()
	var once sync.Once
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "hello from "+name)
		if served != nil {
			once.Do(func() { close(served) })
		}
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fail(srv.ListenAndServe().Error())
}

func get(url string, timeout time.Duration) string {
	c := &http.Client{Timeout: 3 * time.Second}
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		resp, err := c.Get(url)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(b)
		}
		last = fmt.Errorf("%s: %s", resp.Status, b)
	}
	fail(fmt.Sprintf("get %s: %v", url, last))
	return ""
}

// whoami asks the API server, in-cluster, who this pod's service-account token belongs to:
// the kubernetes Service, the mounted CA and token, as client libraries do.
func whoami() {
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
	ca, err := os.ReadFile(sa + "ca.crt")
	if err != nil {
		fail(err.Error())
	}
	token, err := os.ReadFile(sa + "token")
	if err != nil {
		fail(err.Error())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	req, _ := http.NewRequest(http.MethodPost, "https://"+host+"/apis/authentication.k8s.io/v1/selfsubjectreviews",
		bytes.NewBufferString(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	req.Header.Set("Authorization", "Bearer "+string(token))
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Do(req)
	if err != nil {
		fail(err.Error())
	}
	defer resp.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		fail(fmt.Sprintf("%s: %s", resp.Status, b))
	}
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		fail(err.Error())
	}
	fmt.Println("authenticated as", review.Status.UserInfo.Username)
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "probe:", msg)
	os.Exit(1)
}

// resume plays a training that checkpoints, then dies: without KILN_RESUME_FROM it saves a
// checkpoint, reports it on stdout and fails; resumed, it prints the checkpoint it was given.
// Either way it first prints the files named (its data inputs).
func resume(files []string) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err.Error())
		}
		fmt.Printf("%s: %s\n", f, b)
	}
	if from := os.Getenv("KILN_RESUME_FROM"); from != "" {
		b, err := os.ReadFile(from)
		if err != nil {
			fail(err.Error())
		}
		fmt.Printf("resumed from %s: %s\n", from, b)
		return
	}
	cp := filepath.Join(os.Getenv("KILN_CHECKPOINT_DIR"), "step-100")
	if err := os.WriteFile(cp, []byte("weights at step 100"), 0o644); err != nil {
		fail(err.Error())
	}
	fmt.Println("kiln-checkpoint " + cp)
	fail("dying after the checkpoint, as a worker does when its node goes")
}
