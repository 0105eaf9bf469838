// Command mkimages builds the pause, kubia and busybox images into one OCI
// archive for `make run`, which imports it into containerd:
//
//	go run ./hack/mkimages -out bin/images
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/podagent/podagent/internal/testimages"
)

func main() {
	out := flag.String("out", "bin/images", "directory to write the binaries and "+testimages.ArchiveName+" into")
	flag.Parse()

	// Cancel the go builds on Ctrl-C instead of leaving them running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	path, err := testimages.Build(ctx, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimages: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
