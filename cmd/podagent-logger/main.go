// Command podagent-logger is podagent's container log driver on its own: the process that
// containerd's shim starts for each container's output (see package logs/driver). It links
// nothing of the agent, so that each running container costs about 2 MiB for its log instead of
// the agent's whole binary. The runtime prefers it when it sits beside the configured driver.
package main

import (
	"os"

	"github.com/podagent/podagent/logs/driver"
)

func main() { driver.Main(os.Args) }
