package mirror_test

import (
	"os"
	"testing"

	"github.com/podagent/podagent/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
