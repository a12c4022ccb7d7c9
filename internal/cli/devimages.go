package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/internal/images"
)

// DevImagesOptions build the images of the examples that run on a real node.
type DevImagesOptions struct {
	Dir      string
	Registry string

	streams genericiooptions.IOStreams
}

func newDevImagesCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &DevImagesOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build (or find in the cache) the images of the examples that run on a real node",
		Long: `Build the example images: Debian root filesystems made by debootstrap (python3-sklearn for
examples/digits, python3-torch for examples/ddp; minutes the first time, cached by content hash in
~/.cache/kiln/images), each with its example's folder added under /app. With --registry they are
pushed there; ` + "`kubectl kiln dev examples`" + ` does this itself on a local Kiln with a real node.`,
		Example: `  # Build them ahead, e.g. before going offline
  kubectl kiln dev images

  # Build and push to a registry on this machine
  kubectl kiln dev images --registry 127.0.0.1:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "examples", "folder of the examples")
	cmd.Flags().StringVar(&o.Registry, "registry", "", "host:port of a registry (plain HTTP) to push the images to")
	return cmd
}

// Run builds every example image, and pushes it when a registry is given.
func (o *DevImagesOptions) Run(ctx context.Context) error {
	b := &images.Builder{Out: prefixWriter{w: o.streams.ErrOut, prefix: "  "}}
	for _, e := range images.Examples {
		if o.Registry != "" {
			ref, err := b.Publish(ctx, e, o.Dir, o.Registry)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "%s\t%s\n", e.Ref(), ref)
			continue
		}
		img, err := b.Example(ctx, e, o.Dir)
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "%s\t%s/%s@%s\t(not pushed; from %s)\n", e.Ref(), images.LocalRegistry, e.Repo, d, filepath.Join(o.Dir, e.Dir))
	}
	return nil
}
