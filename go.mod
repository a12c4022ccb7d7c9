module kiln.dev/kiln

go 1.26.0
