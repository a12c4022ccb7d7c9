module kiln.dev/kiln/ui

// This folder holds the web console (npm). The file keeps it out of the Go module, so
// `go test ./...` and `go vet ./...` never walk into node_modules.

go 1.26
