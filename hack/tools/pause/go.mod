module kiln.dev/kiln/hack/tools/pause

go 1.26.0
